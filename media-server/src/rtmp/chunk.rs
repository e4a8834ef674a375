//! The RTMP chunk stream: a decoder that reassembles messages from chunks
//! (all four header formats, extended timestamps, chunk size changes,
//! aborts) and an encoder that always writes a type-0 first chunk with an
//! absolute timestamp, so one message encodes to the same bytes for every
//! peer and can be shared among all viewers.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The chunk size both sides start with.
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// Chunk size a peer may ask for (larger is refused as hostile).
pub const MAX_CHUNK_SIZE: usize = 16 * 1024 * 1024;
/// Distinct chunk streams one peer may use (each holds a partial message).
pub const MAX_CHUNK_STREAMS: usize = 64;
const EXTENDED: u32 = 0x00ff_ffff;

/// Chunk stream ids this server sends on.
pub mod csid {
    /// Protocol control messages.
    pub const CONTROL: u32 = 2;
    /// Command messages.
    pub const COMMAND: u32 = 3;
    /// Audio.
    pub const AUDIO: u32 = 4;
    /// Script data.
    pub const DATA: u32 = 5;
    /// Video.
    pub const VIDEO: u32 = 6;
    /// Status (onStatus) on the media message stream.
    pub const STATUS: u32 = 5;
}

/// One reassembled RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Chunk stream it arrived on.
    pub csid: u32,
    /// Message type id.
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// Absolute timestamp, ms.
    pub timestamp: u32,
    /// Payload.
    pub payload: Bytes,
}

/// Why the chunk stream is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk header of format 1-3 on a chunk stream that never had a type-0 header.
    #[error("chunk stream {0} continues a message it never started")]
    NoPreviousHeader(u32),
    /// A message larger than the configured limit.
    #[error("message of {0} bytes exceeds the limit")]
    MessageTooLarge(u32),
    /// Too many chunk streams in use.
    #[error("more than {MAX_CHUNK_STREAMS} chunk streams")]
    TooManyChunkStreams,
    /// A Set Chunk Size outside 1..=16 MiB.
    #[error("invalid chunk size {0}")]
    BadChunkSize(u32),
    /// The header changed the length of a message in progress.
    #[error("chunk stream {0} changed its message header mid-message")]
    HeaderChangedMidMessage(u32),
    /// Partial messages of all chunk streams together exceed the limit (a
    /// peer starting messages it never finishes).
    #[error("more than {0} bytes of unfinished messages")]
    TooMuchBuffered(usize),
}

#[derive(Debug, Default)]
struct ChunkStream {
    has_header: bool,
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    payload: BytesMut,
}

/// Reassembles messages from received bytes.
#[derive(Debug)]
pub struct Decoder {
    chunk_size: usize,
    max_message: u32,
    /// Bound on `buffered`.
    max_buffered: usize,
    /// Bytes of unfinished messages held across all chunk streams.
    buffered: usize,
    streams: HashMap<u32, ChunkStream>,
}

/// Room reserved up front for a message: its declared length is only a
/// claim until the bytes arrive, so larger messages grow as they come.
const MAX_RESERVE: usize = 64 * 1024;

impl Decoder {
    /// A decoder accepting messages up to `max_message` bytes, holding at
    /// most twice that in unfinished messages across its chunk streams
    /// (one large video message interleaved with audio fits; 64 streams
    /// each holding a message that never ends do not).
    pub fn new(max_message: u32) -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_message,
            max_buffered: (max_message as usize).saturating_mul(2),
            buffered: 0,
            streams: HashMap::new(),
        }
    }

    /// Bytes of unfinished messages held now.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Applies a peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        let s = size as usize;
        if s == 0 || s > MAX_CHUNK_SIZE {
            return Err(ChunkError::BadChunkSize(size));
        }
        self.chunk_size = s;
        Ok(())
    }

    /// Drops a partial message (Abort Message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(cs) = self.streams.get_mut(&csid) {
            self.buffered -= cs.payload.len().min(self.buffered);
            cs.payload = BytesMut::new();
        }
    }

    /// Consumes complete chunks from `input`; returns the next complete
    /// message, or `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<Message>, ChunkError> {
        loop {
            let Some(parsed) = self.parse_chunk(input)? else {
                return Ok(None);
            };
            if let Some(msg) = parsed {
                return Ok(Some(msg));
            }
        }
    }

    /// Parses one chunk if complete. `Ok(Some(None))`: a chunk was consumed
    /// but the message is not complete yet.
    #[allow(clippy::option_option, clippy::too_many_lines)]
    fn parse_chunk(&mut self, input: &mut BytesMut) -> Result<Option<Option<Message>>, ChunkError> {
        let buf = &input[..];
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3f {
            0 => match buf.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(None),
            },
            1 => match (buf.get(1), buf.get(2)) {
                (Some(&lo), Some(&hi)) => (64 + u32::from(lo) + 256 * u32::from(hi), 3),
                _ => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        if buf.len() < pos + header_len {
            return Ok(None);
        }
        if !self.streams.contains_key(&csid) && self.streams.len() >= MAX_CHUNK_STREAMS {
            return Err(ChunkError::TooManyChunkStreams);
        }
        let h = &buf[pos..pos + header_len];
        pos += header_len;
        let u24 = |b: &[u8]| (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let prev = self.streams.get(&csid);
        let has_prev = prev.is_some_and(|p| p.has_header);
        if fmt != 0 && !has_prev {
            return Err(ChunkError::NoPreviousHeader(csid));
        }
        let in_progress = prev.is_some_and(|p| !p.payload.is_empty());
        // Fields of this header (None = inherited).
        let ts_field = (fmt < 3).then(|| u24(&h[0..3]));
        let length = (fmt < 2).then(|| u24(&h[3..6]));
        let type_id = (fmt < 2).then(|| h[6]);
        let stream_id = (fmt == 0).then(|| u32::from_le_bytes([h[7], h[8], h[9], h[10]]));
        let extended = match ts_field {
            Some(t) => t == EXTENDED,
            None => prev.is_some_and(|p| p.extended),
        };
        let ext_value = if extended {
            let Some(b) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        } else {
            None
        };
        let cur_len = match (length, prev) {
            (Some(l), _) => l,
            (None, Some(p)) => p.length,
            (None, None) => return Err(ChunkError::NoPreviousHeader(csid)),
        };
        if cur_len > self.max_message {
            return Err(ChunkError::MessageTooLarge(cur_len));
        }
        let already = prev.map_or(0, |p| p.payload.len());
        if in_progress && fmt != 3 && length.is_some_and(|l| prev.is_some_and(|p| p.length != l)) {
            return Err(ChunkError::HeaderChangedMidMessage(csid));
        }
        let want = (cur_len as usize - already.min(cur_len as usize)).min(self.chunk_size);
        if buf.len() < pos + want {
            return Ok(None);
        }
        let completes = already + want >= cur_len as usize;
        if !completes && self.buffered + want > self.max_buffered {
            return Err(ChunkError::TooMuchBuffered(self.max_buffered));
        }
        // The whole chunk is here: commit.
        let cs = self.streams.entry(csid).or_default();
        let starts_message = cs.payload.is_empty();
        let full_ts = ext_value.or(ts_field);
        match fmt {
            0 => {
                cs.timestamp = full_ts.unwrap_or(0);
                cs.delta = 0;
            }
            1 | 2 => {
                let d = full_ts.unwrap_or(0);
                cs.delta = d;
                if starts_message {
                    cs.timestamp = cs.timestamp.wrapping_add(d);
                }
            }
            _ => {
                if starts_message {
                    cs.timestamp = cs.timestamp.wrapping_add(cs.delta);
                }
            }
        }
        cs.has_header = true;
        cs.extended = extended;
        if let Some(l) = length {
            cs.length = l;
        }
        if let Some(t) = type_id {
            cs.type_id = t;
        }
        if let Some(s) = stream_id {
            cs.stream_id = s;
        }
        if starts_message {
            cs.payload.reserve((cs.length as usize).min(MAX_RESERVE));
        }
        input.advance(pos);
        cs.payload.put_slice(&input[..want]);
        input.advance(want);
        self.buffered += want;
        if cs.payload.len() >= cs.length as usize {
            self.buffered -= cs.payload.len().min(self.buffered);
            let payload = cs.payload.split().freeze();
            return Ok(Some(Some(Message {
                csid,
                type_id: cs.type_id,
                stream_id: cs.stream_id,
                timestamp: cs.timestamp,
                payload,
            })));
        }
        Ok(Some(None))
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    // Truncations below are by construction of each range.
    #[allow(clippy::cast_possible_truncation)]
    match csid {
        2..=63 => out.put_u8((fmt << 6) | csid as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let v = csid.saturating_sub(64).min(65_535);
            out.put_u8((fmt << 6) | 1);
            out.put_u8((v & 0xff) as u8);
            out.put_u8((v >> 8) as u8);
        }
    }
}

fn put_u24(out: &mut BytesMut, v: u32) {
    let b = v.to_be_bytes();
    out.put_slice(&b[1..]);
}

/// Appends `payload` as one message: a type-0 chunk, then type-3 chunks.
pub fn encode(
    out: &mut BytesMut,
    csid: u32,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
    chunk_size: usize,
) {
    let chunk_size = chunk_size.max(1);
    let extended = timestamp >= EXTENDED;
    let chunks = payload.len().div_ceil(chunk_size).max(1);
    out.reserve(payload.len() + 16 + chunks * 5);
    put_basic_header(out, 0, csid);
    put_u24(out, timestamp.min(EXTENDED));
    // RTMP message lengths are 24 bits; callers bound payloads below that.
    put_u24(
        out,
        u32::try_from(payload.len()).unwrap_or(EXTENDED) & EXTENDED,
    );
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
    if extended {
        out.put_u32(timestamp);
    }
    for (i, chunk) in payload.chunks(chunk_size).enumerate() {
        if i > 0 {
            put_basic_header(out, 3, csid);
            if extended {
                out.put_u32(timestamp);
            }
        }
        out.put_slice(chunk);
    }
}

/// Encodes one message into its own buffer.
pub fn encode_to_bytes(
    csid: u32,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
    chunk_size: usize,
) -> Bytes {
    let mut out = BytesMut::new();
    encode(
        &mut out, csid, type_id, stream_id, timestamp, payload, chunk_size,
    );
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(dec: &mut Decoder, bytes: &[u8]) -> Vec<Message> {
        let mut input = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(m) = dec.decode(&mut input).unwrap() {
            out.push(m);
        }
        assert!(input.is_empty(), "{} bytes left", input.len());
        out
    }

    #[test]
    fn encode_decode_round_trip_across_chunk_sizes() {
        let payload: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        for size in [1usize, 128, 300, 4096] {
            let bytes = encode_to_bytes(6, 9, 1, 1234, &payload, size);
            let mut dec = Decoder::new(1 << 20);
            dec.set_chunk_size(u32::try_from(size).unwrap()).unwrap();
            let msgs = decode_all(&mut dec, &bytes);
            assert_eq!(msgs.len(), 1);
            assert_eq!(msgs[0].payload, payload);
            assert_eq!(
                (msgs[0].type_id, msgs[0].stream_id, msgs[0].timestamp),
                (9, 1, 1234)
            );
        }
    }

    #[test]
    fn known_bytes_of_a_small_message() {
        let bytes = encode_to_bytes(3, 20, 0, 0, &[1, 2, 3], 128);
        assert_eq!(
            &bytes[..],
            &[0x03, 0, 0, 0, 0, 0, 3, 20, 0, 0, 0, 0, 1, 2, 3]
        );
    }

    #[test]
    fn extended_timestamps_and_large_csids() {
        let payload = vec![7u8; 300];
        for csid in [3u32, 100, 5000] {
            let bytes = encode_to_bytes(csid, 8, 1, 0x0100_0000, &payload, 128);
            let mut dec = Decoder::new(1 << 20);
            let msgs = decode_all(&mut dec, &bytes);
            assert_eq!(msgs[0].timestamp, 0x0100_0000);
            assert_eq!(msgs[0].csid, csid);
            assert_eq!(msgs[0].payload.len(), 300);
        }
    }

    #[test]
    fn compressed_headers_apply_deltas() {
        // fmt 0 at ts 100, then fmt 2 (delta 40), then fmt 3 (same delta again).
        let mut b = BytesMut::new();
        b.put_slice(&[0x04, 0, 0, 100, 0, 0, 2, 8, 1, 0, 0, 0, 0xaa, 0xbb]);
        b.put_slice(&[0x84, 0, 0, 40, 0xcc, 0xdd]);
        b.put_slice(&[0xc4, 0xee, 0xff]);
        // fmt 1: delta 10, new length 1, type 9.
        b.put_slice(&[0x44, 0, 0, 10, 0, 0, 1, 9, 0x11]);
        let mut dec = Decoder::new(1 << 20);
        let msgs = decode_all(&mut dec, &b);
        let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![100, 140, 180, 190]);
        assert_eq!(msgs[3].type_id, 9);
        assert_eq!(msgs[3].stream_id, 1);
    }

    #[test]
    fn chunk_size_change_mid_stream() {
        let mut all = BytesMut::new();
        encode(&mut all, 3, 20, 0, 0, &[9u8; 200], 128);
        let mut dec = Decoder::new(1 << 20);
        let first = decode_all(&mut dec, &all);
        assert_eq!(first[0].payload.len(), 200);
        dec.set_chunk_size(4096).unwrap();
        let big = encode_to_bytes(3, 20, 0, 0, &[1u8; 3000], 4096);
        assert_eq!(big.len(), 12 + 3000);
        assert_eq!(decode_all(&mut dec, &big)[0].payload.len(), 3000);
    }

    #[test]
    fn byte_at_a_time() {
        let bytes = encode_to_bytes(6, 9, 1, 5, &[3u8; 700], 128);
        let mut dec = Decoder::new(1 << 20);
        let mut input = BytesMut::new();
        let mut got = None;
        for b in &bytes {
            input.put_u8(*b);
            if let Some(m) = dec.decode(&mut input).unwrap() {
                got = Some(m);
            }
        }
        assert_eq!(got.unwrap().payload.len(), 700);
    }

    #[test]
    fn hostile_chunks_are_errors() {
        let mut dec = Decoder::new(1000);
        let mut input = BytesMut::from(&[0xc3u8, 1, 2][..]);
        assert_eq!(dec.decode(&mut input), Err(ChunkError::NoPreviousHeader(3)));
        let big = encode_to_bytes(3, 9, 1, 0, &[0u8; 2000], 128);
        let mut input = BytesMut::from(&big[..]);
        assert_eq!(
            dec.decode(&mut input),
            Err(ChunkError::MessageTooLarge(2000))
        );
        assert_eq!(dec.set_chunk_size(0), Err(ChunkError::BadChunkSize(0)));
        let mut many = BytesMut::new();
        for c in 2..200u32 {
            encode(&mut many, c, 20, 0, 0, &[0u8; 200], 128);
        }
        let mut dec = Decoder::new(1 << 20);
        let mut result = Ok(None);
        for _ in 0..400 {
            result = dec.decode(&mut many);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(ChunkError::TooManyChunkStreams));
    }

    /// The first chunk (128 bytes) of a message of `len` bytes on `csid`.
    fn first_chunk(csid: u32, len: usize) -> Vec<u8> {
        let whole = encode_to_bytes(csid, 9, 1, 0, &vec![0u8; len], 128);
        whole[..12 + 128.min(len)].to_vec()
    }

    #[test]
    fn unfinished_messages_are_bounded_in_total() {
        // Limit 1000 per message, so 2000 unfinished in total: 15 first
        // chunks of 128 bytes fit, the 16th does not.
        let mut dec = Decoder::new(1000);
        let mut input = BytesMut::new();
        for c in 3..19u32 {
            input.extend_from_slice(&first_chunk(c, 900));
        }
        let mut result = Ok(None);
        for _ in 0..20 {
            result = dec.decode(&mut input);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(ChunkError::TooMuchBuffered(2000)));
        assert!(dec.buffered() <= 2000, "{}", dec.buffered());
    }

    #[test]
    fn abort_and_completion_release_what_was_buffered() {
        let mut dec = Decoder::new(1000);
        let mut input = BytesMut::from(&first_chunk(3, 900)[..]);
        assert_eq!(dec.decode(&mut input), Ok(None));
        assert_eq!(dec.buffered(), 128);
        dec.abort(3);
        assert_eq!(dec.buffered(), 0);
        let whole = encode_to_bytes(4, 9, 1, 0, &[1u8; 900], 128);
        assert_eq!(decode_all(&mut dec, &whole)[0].payload.len(), 900);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn a_declared_length_is_not_allocated_before_its_bytes_arrive() {
        let mut dec = Decoder::new(16 * 1024 * 1024);
        // 64 chunk streams each claiming a 16 MiB message, 140 bytes each.
        let mut input = BytesMut::new();
        for c in 3..67u32 {
            let c = u8::try_from(c).unwrap();
            let mut h = vec![c & 0x3f, 0, 0, 0, 0xff, 0xff, 0xf0, 9, 1, 0, 0, 0];
            if c >= 64 {
                h = vec![0, c - 64, 0, 0, 0, 0xff, 0xff, 0xf0, 9, 1, 0, 0, 0];
            }
            input.extend_from_slice(&h);
            input.extend_from_slice(&[0u8; 128]);
        }
        while let Ok(Some(_)) = dec.decode(&mut input) {}
        let reserved: usize = dec.streams.values().map(|s| s.payload.capacity()).sum();
        assert!(reserved <= 64 * MAX_RESERVE, "{reserved} bytes reserved");
    }

    #[test]
    fn chunk_sizes_zero_and_two_to_the_31_are_refused() {
        let mut dec = Decoder::new(1 << 20);
        assert_eq!(dec.set_chunk_size(0), Err(ChunkError::BadChunkSize(0)));
        assert_eq!(
            dec.set_chunk_size(1 << 31),
            Err(ChunkError::BadChunkSize(1 << 31))
        );
        assert_eq!(
            dec.set_chunk_size(0x7fff_ffff),
            Err(ChunkError::BadChunkSize(0x7fff_ffff))
        );
        assert_eq!(dec.set_chunk_size(1), Ok(()));
    }
}
