//! The GOP cache: what a viewer joining now needs to start decoding at once
//! (metadata, the latest sequence headers, and every tag since the last
//! keyframe). Pure data structure, no locking or I/O.

use std::sync::Arc;

use crate::media::TagKind;

use super::frame::Frame;

/// Bound on cached tags so a stream without keyframes (audio only, or a
/// broken encoder) cannot grow the cache without limit.
pub const MAX_GOP_FRAMES: usize = 4096;
/// Bound on cached media bytes for the same reason.
pub const MAX_GOP_BYTES: usize = 32 * 1024 * 1024;

/// Metadata, sequence headers and the current GOP of one publication.
#[derive(Debug, Default)]
pub struct GopCache {
    metadata: Option<Arc<Frame>>,
    video_header: Option<Arc<Frame>>,
    audio_header: Option<Arc<Frame>>,
    frames: Vec<Arc<Frame>>,
    bytes: usize,
    seen_video: bool,
}

/// True for an `onMetaData` script tag (as sent by `@setDataFrame`, which the
/// RTMP layer strips, or directly).
pub fn is_metadata(frame: &Frame) -> bool {
    frame.tag.kind == TagKind::Script
        && crate::flv::script_name(&frame.tag.data) == Some("onMetaData")
}

impl GopCache {
    /// Records a published frame.
    pub fn push(&mut self, frame: &Arc<Frame>) {
        let tag = &frame.tag;
        if tag.kind == TagKind::Script {
            if is_metadata(frame) {
                self.metadata = Some(Arc::clone(frame));
            }
            return;
        }
        if tag.is_sequence_header() {
            match tag.kind {
                TagKind::Video => self.video_header = Some(Arc::clone(frame)),
                _ => self.audio_header = Some(Arc::clone(frame)),
            }
            return;
        }
        if tag.kind == TagKind::Video {
            self.seen_video = true;
            if tag.is_keyframe() {
                self.frames.clear();
                self.bytes = 0;
            } else if self.frames.is_empty() {
                // Inter frames before the first keyframe cannot be decoded.
                return;
            }
        } else if self.seen_video && self.frames.is_empty() {
            // Audio before the first keyframe would make viewers start on audio
            // and wait for video; skip it.
            return;
        }
        self.frames.push(Arc::clone(frame));
        self.bytes += frame.len();
        if self.frames.len() > MAX_GOP_FRAMES || self.bytes > MAX_GOP_BYTES {
            if self.seen_video {
                // A GOP this long is useless to start on; wait for the next keyframe.
                self.frames.clear();
                self.bytes = 0;
            } else {
                let half = self.frames.len() / 2;
                self.frames.drain(..half);
                self.bytes = self.frames.iter().map(|f| f.len()).sum();
            }
        }
    }

    /// What a new viewer receives first, in order.
    pub fn snapshot(&self) -> Vec<Arc<Frame>> {
        let mut out = Vec::with_capacity(self.frames.len() + 3);
        out.extend(self.metadata.iter().cloned());
        out.extend(self.video_header.iter().cloned());
        out.extend(self.audio_header.iter().cloned());
        out.extend(self.frames.iter().cloned());
        out
    }

    /// The latest video sequence header.
    pub fn video_header(&self) -> Option<&Arc<Frame>> {
        self.video_header.as_ref()
    }

    /// The latest audio sequence header.
    pub fn audio_header(&self) -> Option<&Arc<Frame>> {
        self.audio_header.as_ref()
    }

    /// The latest metadata.
    pub fn metadata(&self) -> Option<&Arc<Frame>> {
        self.metadata.as_ref()
    }

    /// Tags cached since the last keyframe.
    pub fn frames(&self) -> usize {
        self.frames.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::media::Tag;

    fn frame(kind: TagKind, ts: u32, data: &'static [u8]) -> Arc<Frame> {
        Arc::new(Frame::new(Tag {
            kind,
            timestamp: ts,
            data: Bytes::from_static(data),
        }))
    }

    #[test]
    fn new_viewer_starts_on_the_latest_keyframe() {
        let mut gop = GopCache::default();
        let meta = crate::flv::tests_support::metadata_tag();
        gop.push(&Arc::new(Frame::new(meta)));
        gop.push(&frame(TagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]));
        gop.push(&frame(TagKind::Audio, 0, &[0xaf, 0, 0x12, 0x10]));
        gop.push(&frame(TagKind::Video, 0, &[0x27, 1, 0, 0, 0])); // before any keyframe
        gop.push(&frame(TagKind::Video, 33, &[0x17, 1, 0, 0, 0]));
        gop.push(&frame(TagKind::Audio, 40, &[0xaf, 1, 7]));
        gop.push(&frame(TagKind::Video, 66, &[0x27, 1, 0, 0, 0]));
        gop.push(&frame(TagKind::Video, 1000, &[0x17, 1, 0, 0, 0]));
        gop.push(&frame(TagKind::Video, 1033, &[0x27, 1, 0, 0, 0]));
        let snap = gop.snapshot();
        let ts: Vec<u32> = snap.iter().map(|f| f.tag.timestamp).collect();
        assert_eq!(ts, vec![0, 0, 0, 1000, 1033]);
        assert_eq!(snap[0].tag.kind, TagKind::Script);
        assert!(snap[1].tag.is_sequence_header());
        assert!(snap[3].tag.is_keyframe());
    }

    #[test]
    fn audio_only_is_bounded() {
        let mut gop = GopCache::default();
        for i in 0..(u32::try_from(MAX_GOP_FRAMES).unwrap() + 10) {
            gop.push(&frame(TagKind::Audio, i, &[0xaf, 1, 7]));
        }
        assert!(gop.frames() <= MAX_GOP_FRAMES);
        assert!(gop.frames() > 0);
    }

    #[test]
    fn later_sequence_header_replaces_the_first() {
        let mut gop = GopCache::default();
        gop.push(&frame(TagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]));
        gop.push(&frame(TagKind::Video, 5, &[0x17, 0, 0, 0, 0, 2]));
        assert_eq!(gop.video_header().unwrap().tag.timestamp, 5);
        assert!(gop.audio_header().is_none());
        assert!(gop.metadata().is_none());
    }
}
