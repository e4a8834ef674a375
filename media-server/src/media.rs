//! The unit every protocol exchanges through the stream hub: one FLV tag
//! body with its kind and timestamp. RTMP audio/video/data messages, FLV
//! file tags and HTTP-FLV tags are this exact byte layout, so ingest and
//! playback pass the same `Bytes` along without copying; muxers (MPEG-TS,
//! fMP4) read codec data out of it.

use bytes::Bytes;

/// FLV/RTMP tag type (the RTMP message type id for media).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagKind {
    /// RTMP message type 8.
    Audio,
    /// RTMP message type 9.
    Video,
    /// RTMP message type 18 (AMF0 data, e.g. `@setDataFrame` / `onMetaData`).
    Script,
}

impl TagKind {
    /// The FLV tag type / RTMP message type id.
    pub fn type_id(self) -> u8 {
        match self {
            TagKind::Audio => 8,
            TagKind::Video => 9,
            TagKind::Script => 18,
        }
    }

    /// The kind for an FLV tag type / RTMP message type id.
    pub fn from_type_id(id: u8) -> Option<Self> {
        match id {
            8 => Some(TagKind::Audio),
            9 => Some(TagKind::Video),
            18 => Some(TagKind::Script),
            _ => None,
        }
    }
}

/// One media tag: what the publisher sent, shared by every viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Audio, video or script data.
    pub kind: TagKind,
    /// Decode timestamp in milliseconds on the stream's RTMP/FLV timeline.
    pub timestamp: u32,
    /// The FLV tag body (without the 11-byte FLV tag header).
    pub data: Bytes,
}

/// FLV video codec id for H.264/AVC.
pub const VIDEO_CODEC_AVC: u8 = 7;
/// FLV audio format id for AAC.
pub const AUDIO_FORMAT_AAC: u8 = 10;

impl Tag {
    /// True for a video tag that starts a GOP (a keyframe), legacy or enhanced RTMP.
    pub fn is_keyframe(&self) -> bool {
        self.kind == TagKind::Video && self.data.first().is_some_and(|b| (b >> 4) & 0x07 == 1)
    }

    /// True for a codec configuration tag (AVC decoder configuration record,
    /// AAC `AudioSpecificConfig`, or an enhanced-RTMP sequence start): viewers
    /// need the latest one before any frame.
    pub fn is_sequence_header(&self) -> bool {
        match self.kind {
            TagKind::Video => match self.data.first() {
                // Enhanced RTMP: IsExHeader bit, packet type 0 = SequenceStart.
                Some(b) if b & 0x80 != 0 => b.trailing_zeros() >= 4,
                Some(b) => b & 0x0f == VIDEO_CODEC_AVC && self.data.get(1) == Some(&0),
                None => false,
            },
            TagKind::Audio => {
                self.data.first().map(|b| b >> 4) == Some(AUDIO_FORMAT_AAC)
                    && self.data.get(1) == Some(&0)
            }
            TagKind::Script => false,
        }
    }

    /// AVC composition time offset (pts - dts) in milliseconds; 0 when absent.
    pub fn composition_time(&self) -> i32 {
        if self.kind != TagKind::Video || self.data.len() < 5 || self.data[0] & 0x80 != 0 {
            return 0;
        }
        let raw = (u32::from(self.data[2]) << 16)
            | (u32::from(self.data[3]) << 8)
            | u32::from(self.data[4]);
        // 24-bit signed: shift into the top of an i32 and back to sign-extend.
        i32::from_be_bytes((raw << 8).to_be_bytes()) >> 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(data: &'static [u8]) -> Tag {
        Tag {
            kind: TagKind::Video,
            timestamp: 0,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn avc_keyframe_and_sequence_header() {
        let seq = video(&[0x17, 0x00, 0, 0, 0, 1]);
        assert!(seq.is_keyframe());
        assert!(seq.is_sequence_header());
        let key = video(&[0x17, 0x01, 0, 0, 0x28]);
        assert!(key.is_keyframe());
        assert!(!key.is_sequence_header());
        assert_eq!(key.composition_time(), 40);
        let inter = video(&[0x27, 0x01, 0xff, 0xff, 0xd8]);
        assert!(!inter.is_keyframe());
        assert_eq!(inter.composition_time(), -40);
    }

    #[test]
    fn aac_sequence_header() {
        let seq = Tag {
            kind: TagKind::Audio,
            timestamp: 0,
            data: Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]),
        };
        assert!(seq.is_sequence_header());
        let raw = Tag {
            kind: TagKind::Audio,
            timestamp: 0,
            data: Bytes::from_static(&[0xaf, 0x01, 0x21]),
        };
        assert!(!raw.is_sequence_header());
    }

    #[test]
    fn empty_tags_are_not_special() {
        let empty = video(&[]);
        assert!(!empty.is_keyframe());
        assert!(!empty.is_sequence_header());
        assert_eq!(empty.composition_time(), 0);
    }
}
