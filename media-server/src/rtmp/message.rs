//! RTMP message types and builders for the messages this server sends:
//! protocol control, user control, AMF0 commands, status, and media.

use bytes::{BufMut, Bytes, BytesMut};

use super::chunk::{self, csid};
use crate::amf0::{self, Value};
use crate::media::{Tag, TagKind};

/// Message type ids.
pub mod type_id {
    /// Set Chunk Size.
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message.
    pub const ABORT: u8 = 2;
    /// Acknowledgement.
    pub const ACK: u8 = 3;
    /// User Control Message.
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size.
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth.
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio.
    pub const AUDIO: u8 = 8;
    /// Video.
    pub const VIDEO: u8 = 9;
    /// AMF3 data.
    pub const DATA_AMF3: u8 = 15;
    /// AMF3 command.
    pub const COMMAND_AMF3: u8 = 17;
    /// AMF0 data.
    pub const DATA_AMF0: u8 = 18;
    /// AMF0 command.
    pub const COMMAND_AMF0: u8 = 20;
}

/// User control event types.
pub mod user_control {
    /// Stream Begin.
    pub const STREAM_BEGIN: u16 = 0;
    /// Stream EOF.
    pub const STREAM_EOF: u16 = 1;
    /// Set Buffer Length.
    pub const SET_BUFFER_LENGTH: u16 = 3;
    /// Stream Is Recorded.
    pub const STREAM_IS_RECORDED: u16 = 4;
    /// Ping Request.
    pub const PING_REQUEST: u16 = 6;
    /// Ping Response.
    pub const PING_RESPONSE: u16 = 7;
}

/// The message stream id every media stream of a connection uses.
pub const MEDIA_STREAM_ID: u32 = 1;

/// Appends a protocol control message carrying one u32.
fn control_u32(out: &mut BytesMut, type_id: u8, value: u32) {
    chunk::encode(
        out,
        csid::CONTROL,
        type_id,
        0,
        0,
        &value.to_be_bytes(),
        chunk::DEFAULT_CHUNK_SIZE,
    );
}

/// Set Chunk Size (always sent with the default chunk size, as it must be).
pub fn set_chunk_size(out: &mut BytesMut, size: u32) {
    control_u32(out, type_id::SET_CHUNK_SIZE, size & 0x7fff_ffff);
}

/// Window Acknowledgement Size.
pub fn window_ack_size(out: &mut BytesMut, size: u32) {
    control_u32(out, type_id::WINDOW_ACK_SIZE, size);
}

/// Acknowledgement of `sequence` bytes received.
pub fn ack(out: &mut BytesMut, sequence: u32) {
    control_u32(out, type_id::ACK, sequence);
}

/// Set Peer Bandwidth (limit type 2 = dynamic).
pub fn set_peer_bandwidth(out: &mut BytesMut, size: u32) {
    let mut p = [0u8; 5];
    p[..4].copy_from_slice(&size.to_be_bytes());
    p[4] = 2;
    chunk::encode(
        out,
        csid::CONTROL,
        type_id::SET_PEER_BANDWIDTH,
        0,
        0,
        &p,
        chunk::DEFAULT_CHUNK_SIZE,
    );
}

/// A user control event with a u32 argument (stream id).
pub fn user_control(out: &mut BytesMut, event: u16, arg: u32, chunk_size: usize) {
    let mut p = [0u8; 6];
    p[..2].copy_from_slice(&event.to_be_bytes());
    p[2..].copy_from_slice(&arg.to_be_bytes());
    chunk::encode(
        out,
        csid::CONTROL,
        type_id::USER_CONTROL,
        0,
        0,
        &p,
        chunk_size,
    );
}

/// Set Buffer Length (client to server): stream id and milliseconds.
pub fn set_buffer_length(out: &mut BytesMut, stream_id: u32, ms: u32, chunk_size: usize) {
    let mut p = BytesMut::with_capacity(10);
    p.put_u16(user_control::SET_BUFFER_LENGTH);
    p.put_u32(stream_id);
    p.put_u32(ms);
    chunk::encode(
        out,
        csid::CONTROL,
        type_id::USER_CONTROL,
        0,
        0,
        &p,
        chunk_size,
    );
}

/// An AMF0 command (or data message) made of `values`.
pub fn amf(
    out: &mut BytesMut,
    csid: u32,
    type_id: u8,
    stream_id: u32,
    values: &[Value],
    chunk_size: usize,
) {
    let payload = amf0::encode_all(values);
    chunk::encode(out, csid, type_id, stream_id, 0, &payload, chunk_size);
}

/// `onStatus` on the media message stream.
pub fn status(out: &mut BytesMut, level: &str, code: &str, description: &str, chunk_size: usize) {
    amf(
        out,
        csid::STATUS,
        type_id::COMMAND_AMF0,
        MEDIA_STREAM_ID,
        &[
            Value::string("onStatus"),
            Value::Number(0.0),
            Value::Null,
            Value::object([
                ("level", Value::string(level)),
                ("code", Value::string(code)),
                ("description", Value::string(description)),
            ]),
        ],
        chunk_size,
    );
}

/// The chunk stream a tag kind travels on.
pub fn media_csid(kind: TagKind) -> u32 {
    match kind {
        TagKind::Audio => csid::AUDIO,
        TagKind::Video => csid::VIDEO,
        TagKind::Script => csid::DATA,
    }
}

/// A tag as RTMP chunks on message stream 1: identical for every viewer
/// with the same chunk size, so it is built once and shared.
pub fn media_chunks(tag: &Tag, chunk_size: usize) -> Bytes {
    chunk::encode_to_bytes(
        media_csid(tag.kind),
        tag.kind.type_id(),
        MEDIA_STREAM_ID,
        tag.timestamp,
        &tag.data,
        chunk_size,
    )
}

/// A decoded command message.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Command name (`connect`, `play`, `_result`, `onStatus`...).
    pub name: String,
    /// Transaction id.
    pub transaction: f64,
    /// The command object (often Null).
    pub object: Value,
    /// Further arguments.
    pub args: Vec<Value>,
}

impl Command {
    /// Decodes an AMF0 command payload (AMF3 commands: skip their first byte first).
    pub fn decode(payload: &[u8]) -> Result<Self, amf0::Amf0Error> {
        let mut values = amf0::decode_all(payload)?.into_iter();
        let name = match values.next() {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        let transaction = values.next().and_then(|v| v.as_f64()).unwrap_or(0.0);
        let object = values.next().unwrap_or(Value::Null);
        Ok(Self {
            name,
            transaction,
            object,
            args: values.collect(),
        })
    }

    /// The first argument as a string.
    pub fn arg_str(&self, i: usize) -> Option<&str> {
        self.args.get(i).and_then(Value::as_str)
    }
}

/// A stream or app name without its query string (`name?token=..`).
pub fn strip_query(name: &str) -> &str {
    name.split_once('?').map_or(name, |(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_round_trip() {
        let mut out = BytesMut::new();
        amf(
            &mut out,
            csid::COMMAND,
            type_id::COMMAND_AMF0,
            0,
            &[
                Value::string("play"),
                Value::Number(4.0),
                Value::Null,
                Value::string("cam?t=1"),
            ],
            128,
        );
        let mut dec = chunk::Decoder::new(1 << 20);
        let msg = dec.decode(&mut out).unwrap().unwrap();
        let cmd = Command::decode(&msg.payload).unwrap();
        assert_eq!(cmd.name, "play");
        assert!((cmd.transaction - 4.0).abs() < f64::EPSILON);
        assert_eq!(strip_query(cmd.arg_str(0).unwrap()), "cam");
    }

    #[test]
    fn media_chunks_are_on_stream_one() {
        let tag = Tag {
            kind: TagKind::Video,
            timestamp: 33,
            data: Bytes::from_static(&[0x17, 1, 0, 0, 0]),
        };
        let bytes = media_chunks(&tag, 4096);
        let mut dec = chunk::Decoder::new(1 << 20);
        let mut input = BytesMut::from(&bytes[..]);
        let msg = dec.decode(&mut input).unwrap().unwrap();
        assert_eq!(
            (msg.type_id, msg.stream_id, msg.timestamp, msg.csid),
            (9, 1, 33, csid::VIDEO)
        );
    }
}
