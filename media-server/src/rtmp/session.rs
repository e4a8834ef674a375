//! The server side of an RTMP connection as a pure state machine: bytes in,
//! events and reply bytes out. The tokio layer (`conn`) decides what events
//! mean (is the app configured? may this stream be published?) and calls
//! back `accept_*` / `reject_*`, which queue the replies.

use bytes::{Buf, Bytes, BytesMut};

use super::chunk::{self, ChunkError, Decoder, csid};
use super::handshake::{HandshakeError, ServerHandshake};
use super::message::{self, Command, MEDIA_STREAM_ID, type_id, user_control};
use crate::amf0::{Amf0Error, Value};
use crate::flv;
use crate::media::{Tag, TagKind};

/// Window acknowledgement size this server announces.
pub const WINDOW_ACK_SIZE: u32 = 5_000_000;

/// Per-connection settings.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Chunk size for everything this server sends.
    pub chunk_size: u32,
    /// Largest message accepted.
    pub max_message_size: u32,
}

/// What the peer asked for or sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `connect` to an application; answer with `accept_connect`/`reject_connect`.
    Connect {
        /// Application name (query string removed).
        app: String,
        /// A Fleetcast edge's relay pull (`client::RELAY_PROPERTY`).
        relay: bool,
    },
    /// `publish`; answer with `accept_publish`/`reject_publish`.
    Publish {
        /// Stream name (query string removed).
        name: String,
        /// The query string after `?` in the name, if any (e.g. `token=...`).
        query: Option<String>,
    },
    /// `play`; answer with `accept_play`/`reject_play`.
    Play {
        /// Stream name (query string removed; may carry `mp4:`).
        name: String,
        /// The query string after `?` in the name, if any (signed URLs: `expires=...&token=...`).
        query: Option<String>,
    },
    /// Media or metadata from the publisher.
    Media(Tag),
    /// `FCUnpublish`, `deleteStream` or `closeStream`: the publication or playback ends.
    StreamClosed,
}

/// Why a connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtmpError {
    /// Handshake failure.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// Chunk stream failure.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A command that is not AMF0.
    #[error("AMF0: {0}")]
    Amf(#[from] Amf0Error),
    /// Anything else against the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    None,
    Publishing,
    Playing,
}

/// Largest AMF command message (types 20, 17) accepted: real commands are
/// a few hundred bytes, and each is decoded for any peer right after the
/// handshake.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Largest AMF data message (types 18, 15, e.g. `onMetaData`) accepted.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Refuses an AMF message over `max` bytes before decoding it.
fn check_amf_size(payload: &[u8], max: usize, what: &str) -> Result<(), RtmpError> {
    if payload.len() > max {
        return Err(RtmpError::Protocol(format!(
            "AMF {what} message of {} bytes over the {max}-byte limit",
            payload.len()
        )));
    }
    Ok(())
}

/// One server-side RTMP connection.
#[derive(Debug)]
pub struct ServerSession {
    config: SessionConfig,
    /// Outgoing chunk size.
    cs: usize,
    handshake: ServerHandshake,
    input: BytesMut,
    out: BytesMut,
    decoder: Decoder,
    connected: bool,
    connect_txn: f64,
    role: Role,
    received: u64,
    last_ack: u64,
    peer_window: u32,
}

impl ServerSession {
    /// A session awaiting C0+C1.
    pub fn new(config: SessionConfig, seed: u32) -> Self {
        Self {
            config,
            cs: config.chunk_size as usize,
            handshake: ServerHandshake::new(seed),
            input: BytesMut::new(),
            out: BytesMut::new(),
            decoder: Decoder::new(config.max_message_size),
            connected: false,
            connect_txn: 1.0,
            role: Role::None,
            received: 0,
            last_ack: 0,
            peer_window: 0,
        }
    }

    /// True once the handshake completed.
    pub fn handshake_done(&self) -> bool {
        self.handshake.is_done()
    }

    /// Bytes queued to send (take them with [`ServerSession::take_output`]).
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// The bytes to send now.
    pub fn take_output(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Feeds received bytes; returns the events they complete.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<ServerEvent>, RtmpError> {
        self.received += data.len() as u64;
        self.input.extend_from_slice(data);
        let mut events = Vec::new();
        if !self.handshake.is_done() && !self.handshake.feed(&mut self.input, &mut self.out)? {
            return Ok(events);
        }
        while let Some(msg) = self.decoder.decode(&mut self.input)? {
            self.on_message(msg, &mut events)?;
        }
        if self.input.is_empty() && self.role != Role::Publishing {
            // Players send a few commands after the 3 KiB handshake: do not
            // keep that room for the life of the connection.
            self.input = BytesMut::new();
        }
        if self.peer_window > 0 && self.received - self.last_ack >= u64::from(self.peer_window) {
            self.last_ack = self.received;
            // The sequence number wraps at 32 bits by definition.
            #[allow(clippy::cast_possible_truncation)]
            message::ack(&mut self.out, self.received as u32);
        }
        Ok(events)
    }

    // Conditions stay inside their arm: one arm per message type reads best.
    #[allow(clippy::collapsible_match, clippy::match_same_arms)]
    fn on_message(
        &mut self,
        msg: chunk::Message,
        events: &mut Vec<ServerEvent>,
    ) -> Result<(), RtmpError> {
        let u32_at = |p: &[u8], i: usize| {
            p.get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| {
                    RtmpError::Protocol(format!("control message type {} too short", msg.type_id))
                })
        };
        match msg.type_id {
            type_id::SET_CHUNK_SIZE => {
                let size = u32_at(&msg.payload, 0)? & 0x7fff_ffff;
                self.decoder.set_chunk_size(size)?;
            }
            type_id::ABORT => self.decoder.abort(u32_at(&msg.payload, 0)?),
            type_id::WINDOW_ACK_SIZE => self.peer_window = u32_at(&msg.payload, 0)?,
            type_id::ACK | type_id::SET_PEER_BANDWIDTH => {}
            type_id::USER_CONTROL => {
                if msg.payload.len() >= 6 {
                    let event = u16::from_be_bytes([msg.payload[0], msg.payload[1]]);
                    if event == user_control::PING_REQUEST {
                        let ts = u32_at(&msg.payload, 2)?;
                        message::user_control(
                            &mut self.out,
                            user_control::PING_RESPONSE,
                            ts,
                            self.cs,
                        );
                    }
                }
            }
            type_id::AUDIO | type_id::VIDEO => {
                if self.role == Role::Publishing {
                    let kind = if msg.type_id == type_id::AUDIO {
                        TagKind::Audio
                    } else {
                        TagKind::Video
                    };
                    events.push(ServerEvent::Media(Tag {
                        kind,
                        timestamp: msg.timestamp,
                        data: msg.payload,
                    }));
                }
            }
            type_id::DATA_AMF0 | type_id::DATA_AMF3 => {
                check_amf_size(&msg.payload, MAX_DATA_BYTES, "data")?;
                if self.role == Role::Publishing {
                    let mut payload = msg.payload;
                    if msg.type_id == type_id::DATA_AMF3 && !payload.is_empty() {
                        payload.advance(1);
                    }
                    let data = flv::strip_set_data_frame(payload);
                    // Only well-formed script data is passed on to viewers and files.
                    crate::amf0::decode_all(&data)?;
                    events.push(ServerEvent::Media(flv::script_tag(msg.timestamp, data)));
                }
            }
            type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 => {
                check_amf_size(&msg.payload, MAX_COMMAND_BYTES, "command")?;
                let payload = if msg.type_id == type_id::COMMAND_AMF3 {
                    msg.payload.get(1..).unwrap_or_default()
                } else {
                    &msg.payload[..]
                };
                let cmd = Command::decode(payload)?;
                self.on_command(&cmd, events)?;
            }
            // Aggregate messages (22) and shared objects are not used by
            // publishers we support; ignoring is safer than failing.
            _ => {}
        }
        Ok(())
    }

    fn result(&mut self, txn: f64, values: Vec<Value>) {
        let mut all = vec![Value::string("_result"), Value::Number(txn)];
        all.extend(values);
        message::amf(
            &mut self.out,
            csid::COMMAND,
            type_id::COMMAND_AMF0,
            0,
            &all,
            self.cs,
        );
    }

    #[allow(clippy::collapsible_match)]
    fn on_command(
        &mut self,
        cmd: &Command,
        events: &mut Vec<ServerEvent>,
    ) -> Result<(), RtmpError> {
        match cmd.name.as_str() {
            "connect" => {
                if self.connected {
                    return Err(RtmpError::Protocol("connect sent twice".into()));
                }
                let app = cmd
                    .object
                    .get("app")
                    .and_then(Value::as_str)
                    .ok_or_else(|| RtmpError::Protocol("connect without app".into()))?;
                let app = message::strip_query(app).trim_end_matches('/').to_owned();
                self.connect_txn = cmd.transaction;
                let relay = matches!(
                    cmd.object.get(super::client::RELAY_PROPERTY),
                    Some(Value::Boolean(true))
                );
                events.push(ServerEvent::Connect { app, relay });
            }
            "createStream" => {
                self.result(
                    cmd.transaction,
                    vec![Value::Null, Value::Number(f64::from(MEDIA_STREAM_ID))],
                );
            }
            "releaseStream" | "FCPublish" | "getStreamLength" => {
                if cmd.transaction > 0.0 {
                    self.result(cmd.transaction, vec![Value::Null, Value::Undefined]);
                }
            }
            "publish" | "play" => {
                if !self.connected {
                    return Err(RtmpError::Protocol(format!("{} before connect", cmd.name)));
                }
                if self.role != Role::None {
                    return Err(RtmpError::Protocol(format!(
                        "{} on a stream already in use",
                        cmd.name
                    )));
                }
                let raw = cmd.arg_str(0).ok_or_else(|| {
                    RtmpError::Protocol(format!("{} without a stream name", cmd.name))
                })?;
                let name = message::strip_query(raw).to_owned();
                let query = raw.split_once('?').map(|(_, q)| q.to_owned());
                events.push(if cmd.name == "publish" {
                    ServerEvent::Publish { name, query }
                } else {
                    ServerEvent::Play { name, query }
                });
            }
            "FCUnpublish" | "deleteStream" | "closeStream" => {
                if self.role != Role::None {
                    self.role = Role::None;
                    events.push(ServerEvent::StreamClosed);
                }
            }
            // pause, receiveAudio, _checkbw and the like: harmless to ignore.
            _ => {}
        }
        Ok(())
    }

    /// Accepts `connect`: window size, bandwidth, chunk size, `_result`.
    pub fn accept_connect(&mut self) {
        self.connected = true;
        message::window_ack_size(&mut self.out, WINDOW_ACK_SIZE);
        message::set_peer_bandwidth(&mut self.out, WINDOW_ACK_SIZE);
        message::set_chunk_size(&mut self.out, self.config.chunk_size);
        let txn = self.connect_txn;
        self.result(
            txn,
            vec![
                Value::object([
                    ("fmsVer", Value::string("FMS/3,0,1,123")),
                    ("capabilities", Value::Number(31.0)),
                ]),
                Value::object([
                    ("level", Value::string("status")),
                    ("code", Value::string("NetConnection.Connect.Success")),
                    ("description", Value::string("Connection succeeded.")),
                    ("objectEncoding", Value::Number(0.0)),
                ]),
            ],
        );
    }

    /// Refuses `connect` (unknown application).
    pub fn reject_connect(&mut self, description: &str) {
        let txn = self.connect_txn;
        let values = vec![
            Value::string("_error"),
            Value::Number(txn),
            Value::Null,
            Value::object([
                ("level", Value::string("error")),
                ("code", Value::string("NetConnection.Connect.Rejected")),
                ("description", Value::string(description)),
            ]),
        ];
        message::amf(
            &mut self.out,
            csid::COMMAND,
            type_id::COMMAND_AMF0,
            0,
            &values,
            self.cs,
        );
    }

    /// Accepts `publish`.
    pub fn accept_publish(&mut self, name: &str) {
        self.role = Role::Publishing;
        let cs = self.cs;
        self.stream_begin();
        message::status(
            &mut self.out,
            "status",
            "NetStream.Publish.Start",
            &format!("{name} is now published."),
            cs,
        );
    }

    /// Refuses `publish` with a status code such as `NetStream.Publish.BadName`.
    pub fn reject_publish(&mut self, code: &str, description: &str) {
        message::status(&mut self.out, "error", code, description, self.cs);
    }

    /// Accepts `play`: Stream Begin, `Play.Reset`, `Play.Start`, sample access.
    pub fn accept_play(&mut self, name: &str) {
        self.role = Role::Playing;
        let cs = self.cs;
        self.stream_begin();
        message::status(
            &mut self.out,
            "status",
            "NetStream.Play.Reset",
            &format!("Playing and resetting {name}."),
            cs,
        );
        message::status(
            &mut self.out,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {name}."),
            cs,
        );
        message::amf(
            &mut self.out,
            csid::DATA,
            type_id::DATA_AMF0,
            MEDIA_STREAM_ID,
            &[
                Value::string("|RtmpSampleAccess"),
                Value::Boolean(true),
                Value::Boolean(true),
            ],
            cs,
        );
    }

    /// Refuses `play` (e.g. `NetStream.Play.StreamNotFound`).
    pub fn reject_play(&mut self, code: &str, description: &str) {
        message::status(&mut self.out, "error", code, description, self.cs);
    }

    /// Tells a player its stream's publisher left (Stream EOF + `UnpublishNotify`).
    pub fn unpublish_notify(&mut self, name: &str) {
        let cs = self.cs;
        message::status(
            &mut self.out,
            "status",
            "NetStream.Play.UnpublishNotify",
            &format!("{name} is now unpublished."),
            cs,
        );
        message::user_control(&mut self.out, user_control::STREAM_EOF, MEDIA_STREAM_ID, cs);
    }

    /// Tells a player a VOD file ended (`Play.Stop` + Stream EOF).
    pub fn play_stop(&mut self, name: &str) {
        let cs = self.cs;
        message::status(
            &mut self.out,
            "status",
            "NetStream.Play.Stop",
            &format!("Stopped playing {name}."),
            cs,
        );
        message::user_control(&mut self.out, user_control::STREAM_EOF, MEDIA_STREAM_ID, cs);
    }

    /// User control Stream Begin on the media stream: it precedes every
    /// publish or play start.
    fn stream_begin(&mut self) {
        message::user_control(
            &mut self.out,
            user_control::STREAM_BEGIN,
            MEDIA_STREAM_ID,
            self.cs,
        );
    }

    /// Tells a player its stream is published again.
    pub fn publish_notify(&mut self, name: &str) {
        let cs = self.cs;
        self.stream_begin();
        message::status(
            &mut self.out,
            "status",
            "NetStream.Play.PublishNotify",
            &format!("{name} is now published."),
            cs,
        );
    }

    /// Tells a publisher the server is going away.
    pub fn unpublish_success(&mut self, name: &str) {
        message::status(
            &mut self.out,
            "status",
            "NetStream.Unpublish.Success",
            &format!("{name} is now unpublished."),
            self.cs,
        );
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
