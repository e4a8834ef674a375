//! Incremental FLV parser: feed bytes as they arrive (a file, an HTTP-FLV
//! response), take tags out. Bounded: a tag larger than [`MAX_TAG_SIZE`] or a
//! bad header is an error, never an allocation of what the input claims.

use bytes::{Buf, BytesMut};

use crate::media::{Tag, TagKind};

use super::TAG_HEADER_LEN;

/// Largest tag body accepted (FLV's length field is 24 bits anyway).
pub const MAX_TAG_SIZE: usize = 16 * 1024 * 1024;

/// Why bytes are not FLV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The stream does not start with `FLV`.
    #[error("not an FLV stream (bad signature)")]
    BadSignature,
    /// The header's data offset is impossible.
    #[error("FLV header data offset {0} is invalid")]
    BadHeader(u32),
    /// A tag type other than audio, video or script.
    #[error("FLV tag type {0} is unknown")]
    UnknownTagType(u8),
    /// A tag body larger than the bound.
    #[error("FLV tag of {0} bytes exceeds the limit")]
    TagTooLarge(usize),
    /// Filtered (encrypted) tags are not supported.
    #[error("encrypted FLV tags are not supported")]
    Encrypted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Tags,
}

/// The parser. Call [`Reader::push`] with bytes, then [`Reader::next_tag`]
/// until it returns `Ok(None)`.
#[derive(Debug)]
pub struct Reader {
    buf: BytesMut,
    state: State,
    has_audio: bool,
    has_video: bool,
}

impl Default for Reader {
    fn default() -> Self {
        Self::new()
    }
}

impl Reader {
    /// Expects a file header first.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::new(),
            state: State::Header,
            has_audio: false,
            has_video: false,
        }
    }

    /// Appends input.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The header's audio/video flags (after the header was parsed).
    pub fn flags(&self) -> (bool, bool) {
        (self.has_audio, self.has_video)
    }

    /// The next complete tag, `Ok(None)` when more input is needed.
    pub fn next_tag(&mut self) -> Result<Option<Tag>, FlvError> {
        if self.state == State::Header {
            if self.buf.len() < 3 {
                return Ok(None);
            }
            if &self.buf[..3] != b"FLV" {
                return Err(FlvError::BadSignature);
            }
            if self.buf.len() < 9 {
                return Ok(None);
            }
            let offset = u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
            if !(9..=1024).contains(&offset) {
                return Err(FlvError::BadHeader(offset));
            }
            let skip = offset as usize + 4;
            if self.buf.len() < skip {
                return Ok(None);
            }
            self.has_audio = self.buf[4] & 4 != 0;
            self.has_video = self.buf[4] & 1 != 0;
            self.buf.advance(skip);
            self.state = State::Tags;
        }
        if self.buf.len() < TAG_HEADER_LEN {
            return Ok(None);
        }
        let h = &self.buf[..TAG_HEADER_LEN];
        if h[0] & 0x20 != 0 {
            return Err(FlvError::Encrypted);
        }
        let type_id = h[0] & 0x1f;
        let kind = TagKind::from_type_id(type_id).ok_or(FlvError::UnknownTagType(type_id))?;
        let len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        if len > MAX_TAG_SIZE {
            return Err(FlvError::TagTooLarge(len));
        }
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let total = TAG_HEADER_LEN + len + 4;
        if self.buf.len() < total {
            // The length is a claim until its bytes arrive: the buffer grows
            // with what is pushed, never to what a (lying) header says.
            return Ok(None);
        }
        self.buf.advance(TAG_HEADER_LEN);
        let data = self.buf.split_to(len).freeze();
        // The previous-tag-size is redundant; writers get it wrong, so ignore it.
        self.buf.advance(4);
        Ok(Some(Tag {
            kind,
            timestamp,
            data,
        }))
    }
}

/// Parses a whole FLV byte string into tags.
pub fn parse_all(bytes: &[u8]) -> Result<Vec<Tag>, FlvError> {
    let mut r = Reader::new();
    r.push(bytes);
    let mut out = Vec::new();
    while let Some(tag) = r.next_tag()? {
        out.push(tag);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::{file_header, write_tag};
    use super::*;

    fn sample() -> (Vec<Tag>, Vec<u8>) {
        let tags = vec![
            Tag {
                kind: TagKind::Script,
                timestamp: 0,
                data: Bytes::from_static(&[2, 0, 1, b'x']),
            },
            Tag {
                kind: TagKind::Video,
                timestamp: 33,
                data: Bytes::from_static(&[0x17, 1, 0, 0, 0, 9, 9]),
            },
            Tag {
                kind: TagKind::Audio,
                timestamp: 0x0100_0000,
                data: Bytes::from_static(&[0xaf, 1]),
            },
        ];
        let mut out = BytesMut::new();
        out.extend_from_slice(&file_header(true, true));
        for t in &tags {
            write_tag(&mut out, t);
        }
        (tags, out.to_vec())
    }

    #[test]
    fn write_then_read_round_trips() {
        let (tags, bytes) = sample();
        assert_eq!(parse_all(&bytes).unwrap(), tags);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_tags() {
        let (tags, bytes) = sample();
        let mut r = Reader::new();
        let mut got = Vec::new();
        for b in bytes {
            r.push(&[b]);
            while let Some(t) = r.next_tag().unwrap() {
                got.push(t);
            }
        }
        assert_eq!(got, tags);
        assert_eq!(r.flags(), (true, true));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(parse_all(b"GIF89a"), Err(FlvError::BadSignature));
        let (_, mut bytes) = sample();
        bytes[13] = 7;
        assert_eq!(parse_all(&bytes), Err(FlvError::UnknownTagType(7)));
        let mut header = file_header(true, true).to_vec();
        header[8] = 200;
        header[7] = 200;
        assert!(matches!(parse_all(&header), Err(FlvError::BadHeader(_))));
    }

    #[test]
    fn truncated_input_waits() {
        let (_, bytes) = sample();
        assert_eq!(parse_all(&bytes[..20]).unwrap(), vec![]);
    }

    #[test]
    fn a_lying_tag_size_allocates_nothing_up_front() {
        let mut bytes = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        // A video tag claiming 16 MiB - 1, followed by 100 bytes.
        bytes.extend_from_slice(&[9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0u8; 100]);
        let mut r = Reader::new();
        r.push(&bytes);
        assert_eq!(r.next_tag(), Ok(None));
        assert!(r.buf.capacity() < 64 * 1024, "{}", r.buf.capacity());
        // A size that lies the other way: the next "header" is garbage.
        let mut short = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        short.extend_from_slice(&[9, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x17, 0xee, 0, 0, 0, 0]);
        short.extend_from_slice(&[0u8; 16]);
        assert!(parse_all(&short).is_err());
    }
}
