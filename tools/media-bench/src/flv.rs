//! Incremental FLV reader for playback streams: fed bytes as they arrive, it
//! reports each tag's kind, timestamp and size without buffering tag bodies,
//! so thousands of viewers cost a few bytes of state each.

/// What a viewer needs to know about one tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagInfo {
    /// FLV tag type / RTMP message type id (8 audio, 9 video, 18 script).
    pub kind: u8,
    /// Timestamp in milliseconds (24 bits + 8 extension bits).
    pub timestamp: u32,
    /// Body size in bytes.
    pub size: u32,
    /// A video tag that starts a GOP.
    pub keyframe: bool,
    /// Codec configuration (AVC/HEVC/AV1 sequence start, AAC config).
    pub sequence_header: bool,
}

/// Tag type ids.
pub const AUDIO: u8 = 8;
/// Tag type ids.
pub const VIDEO: u8 = 9;
/// Tag type ids.
pub const SCRIPT: u8 = 18;

impl TagInfo {
    /// A video tag carrying a picture (not codec configuration).
    pub fn is_video_frame(&self) -> bool {
        self.kind == VIDEO && !self.sequence_header
    }

    /// An audio tag carrying samples (not codec configuration).
    pub fn is_audio_frame(&self) -> bool {
        self.kind == AUDIO && !self.sequence_header
    }
}

/// Classifies a tag from the first two bytes of its body (legacy and
/// enhanced RTMP video, AAC audio).
pub fn classify(kind: u8, timestamp: u32, size: u32, prefix: &[u8]) -> TagInfo {
    let b0 = prefix.first().copied();
    let b1 = prefix.get(1).copied();
    let (keyframe, sequence_header) = match (kind, b0) {
        (VIDEO, Some(b)) => {
            let key = (b >> 4) & 0x07 == 1;
            let seq = if b & 0x80 != 0 {
                // Enhanced RTMP: packet type 0 is SequenceStart.
                b.trailing_zeros() >= 4
            } else {
                b & 0x0f == 7 && b1 == Some(0)
            };
            (key, seq)
        }
        (AUDIO, Some(b)) => (false, b >> 4 == 10 && b1 == Some(0)),
        _ => (false, false),
    };
    TagInfo {
        kind,
        timestamp,
        size,
        keyframe,
        sequence_header,
    }
}

/// Why an FLV stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The stream did not start with `FLV`.
    #[error("stream does not start with an FLV header")]
    Signature,
    /// The header announced a size below 9 bytes.
    #[error("FLV header size {0} is below 9")]
    HeaderSize(u32),
    /// A tag type other than audio, video or script: the stream is out of sync.
    #[error("FLV tag type {0} is not audio, video or script")]
    TagType(u8),
}

#[derive(Debug)]
enum State {
    /// Collecting the 9-byte file header.
    FileHeader,
    /// Skipping bytes: extra header bytes, a body remainder or a `PreviousTagSize`.
    Skip { remaining: u32, then_header: bool },
    /// Collecting an 11-byte tag header.
    TagHeader,
    /// Collecting up to two body bytes to classify the tag.
    Prefix { info: [u8; 11], size: u32 },
}

/// Streaming FLV reader.
#[derive(Debug)]
pub struct FlvReader {
    state: State,
    buf: [u8; 11],
    have: usize,
}

impl Default for FlvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvReader {
    /// A reader expecting the FLV file header first.
    pub fn new() -> Self {
        Self {
            state: State::FileHeader,
            buf: [0; 11],
            have: 0,
        }
    }

    /// Feeds bytes; calls `on_tag` for every tag whose header and first body
    /// bytes have arrived.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        mut on_tag: impl FnMut(TagInfo),
    ) -> Result<(), FlvError> {
        while !data.is_empty() {
            match self.state {
                State::FileHeader => {
                    if !self.fill(&mut data, 9) {
                        continue;
                    }
                    if &self.buf[..3] != b"FLV" {
                        return Err(FlvError::Signature);
                    }
                    let size =
                        u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
                    if size < 9 {
                        return Err(FlvError::HeaderSize(size));
                    }
                    // Extra header bytes, then PreviousTagSize0.
                    self.state = State::Skip {
                        remaining: size - 9 + 4,
                        then_header: true,
                    };
                }
                State::Skip {
                    remaining,
                    then_header,
                } => {
                    let n = data.len().min(remaining as usize);
                    data = &data[n..];
                    // n <= remaining, which is a u32.
                    let left = remaining - u32::try_from(n).unwrap_or(remaining);
                    self.state = if left > 0 {
                        State::Skip {
                            remaining: left,
                            then_header,
                        }
                    } else if then_header {
                        State::TagHeader
                    } else {
                        State::Skip {
                            remaining: 4,
                            then_header: true,
                        }
                    };
                }
                State::TagHeader => {
                    if !self.fill(&mut data, 11) {
                        continue;
                    }
                    let kind = self.buf[0] & 0x1f;
                    if !matches!(kind, AUDIO | VIDEO | SCRIPT) {
                        return Err(FlvError::TagType(kind));
                    }
                    let size = u32::from_be_bytes([0, self.buf[1], self.buf[2], self.buf[3]]);
                    let info = self.buf;
                    if size == 0 {
                        on_tag(tag_from(&info, size, &[]));
                        self.state = State::Skip {
                            remaining: 4,
                            then_header: true,
                        };
                    } else {
                        self.state = State::Prefix { info, size };
                    }
                }
                State::Prefix { info, size } => {
                    let want = size.min(2) as usize;
                    if !self.fill(&mut data, want) {
                        continue;
                    }
                    on_tag(tag_from(&info, size, &self.buf[..want]));
                    // `want` is 1 or 2.
                    let rest = size - u32::try_from(want).unwrap_or(0);
                    self.state = if rest > 0 {
                        State::Skip {
                            remaining: rest,
                            then_header: false,
                        }
                    } else {
                        State::Skip {
                            remaining: 4,
                            then_header: true,
                        }
                    };
                }
            }
        }
        Ok(())
    }

    /// Moves bytes into `buf` until it holds `want`; true (and resets) when full.
    fn fill(&mut self, data: &mut &[u8], want: usize) -> bool {
        let n = (want - self.have).min(data.len());
        self.buf[self.have..self.have + n].copy_from_slice(&data[..n]);
        self.have += n;
        *data = &data[n..];
        if self.have == want {
            self.have = 0;
            true
        } else {
            false
        }
    }
}

fn tag_from(header: &[u8; 11], size: u32, prefix: &[u8]) -> TagInfo {
    let timestamp = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
    classify(header[0] & 0x1f, timestamp, size, prefix)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An FLV byte stream: header, `PreviousTagSize0`, then the given tags.
    pub(crate) fn flv_stream(tags: &[(u8, u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        for (kind, ts, body) in tags {
            let size = u32::try_from(body.len()).unwrap();
            out.push(*kind);
            out.extend_from_slice(&size.to_be_bytes()[1..]);
            out.extend_from_slice(&ts.to_be_bytes()[1..]);
            out.push(ts.to_be_bytes()[0]);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(body);
            out.extend_from_slice(&(size + 11).to_be_bytes());
        }
        out
    }

    fn sample() -> Vec<(u8, u32, Vec<u8>)> {
        vec![
            (SCRIPT, 0, vec![2, 0, 10]),
            (VIDEO, 0, vec![0x17, 0, 0, 0, 0, 1, 2, 3]),
            (AUDIO, 0, vec![0xaf, 0, 0x12, 0x10]),
            (VIDEO, 33, vec![0x17, 1, 0, 0, 0, 9, 9, 9, 9]),
            (AUDIO, 40, vec![0xaf, 1, 7, 7]),
            (VIDEO, 0x0100_0042, vec![0x27, 1, 0, 0, 0, 5]),
            (VIDEO, 100, vec![]),
            (AUDIO, 101, vec![0xaf]),
        ]
    }

    fn read_all(bytes: &[u8], step: usize) -> Vec<TagInfo> {
        let mut reader = FlvReader::new();
        let mut tags = Vec::new();
        for chunk in bytes.chunks(step) {
            reader.feed(chunk, |t| tags.push(t)).unwrap();
        }
        tags
    }

    #[test]
    fn reads_tags_whole_and_byte_by_byte() {
        let bytes = flv_stream(&sample());
        let whole = read_all(&bytes, bytes.len());
        for step in [1, 2, 3, 7, 11, 12, 13] {
            assert_eq!(read_all(&bytes, step), whole, "step {step}");
        }
        assert_eq!(whole.len(), 8);
        assert_eq!(whole[0].kind, SCRIPT);
        assert!(whole[1].sequence_header && whole[1].keyframe);
        assert!(!whole[1].is_video_frame());
        assert!(whole[2].sequence_header && !whole[2].is_audio_frame());
        assert!(whole[3].keyframe && whole[3].is_video_frame());
        assert_eq!(whole[3].timestamp, 33);
        assert_eq!(whole[3].size, 9);
        assert!(whole[4].is_audio_frame());
        // Extended timestamp byte is the high 8 bits.
        assert_eq!(whole[5].timestamp, 0x0100_0042);
        assert!(!whole[5].keyframe);
        assert_eq!(whole[6].size, 0);
        assert_eq!(whole[7].size, 1);
    }

    #[test]
    fn rejects_garbage() {
        let mut reader = FlvReader::new();
        assert_eq!(
            reader.feed(b"HTTP/1.1 200 OK\r\n", |_| {}),
            Err(FlvError::Signature)
        );
        let mut bytes = flv_stream(&sample()[..1]);
        bytes.extend_from_slice(&[0x07, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut reader = FlvReader::new();
        assert_eq!(reader.feed(&bytes, |_| {}), Err(FlvError::TagType(7)));
    }

    #[test]
    fn honours_larger_header_size() {
        let mut bytes = b"FLV\x01\x05\x00\x00\x00\x0c\xaa\xbb\xcc".to_vec();
        bytes.extend_from_slice(&flv_stream(&sample()[3..4])[9..]);
        assert_eq!(read_all(&bytes, 5).len(), 1);
    }

    #[test]
    fn classifies_enhanced_rtmp_video() {
        // IsExHeader | keyframe, packet type 0 (SequenceStart), fourcc follows.
        let seq = classify(VIDEO, 0, 10, &[0x90, b'h']);
        assert!(seq.sequence_header && seq.keyframe);
        // Packet type 1 (CodedFrames).
        let frame = classify(VIDEO, 0, 10, &[0x91, b'h']);
        assert!(!frame.sequence_header && frame.keyframe);
    }
}
