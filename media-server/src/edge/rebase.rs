//! Timestamps across an upstream switch. A relayed stream keeps the first
//! upstream's timestamps untouched (so HLS cut on every edge matches the
//! origin's names and bytes). When the upstream changes (origin failover),
//! the new session's timestamps usually restart near zero: they are shifted
//! to continue just after the last one sent, and nothing is sent until the
//! new session's first keyframe (its metadata and sequence headers are held
//! and go out just before it), so viewers' players keep one monotonic
//! timeline and resume on a clean picture. Pure, no I/O.

use crate::media::{Tag, TagKind};

/// Gap put between the last timestamp before a switch and the first after.
pub const SWITCH_GAP_MS: i64 = 40;

/// Rewrites one relayed stream's timestamps across upstream sessions.
#[derive(Debug, Default)]
pub struct Rebaser {
    /// Added to incoming timestamps in the current session.
    offset: i64,
    /// Highest timestamp sent so far (after rewriting).
    last_out: Option<i64>,
    /// No timestamp of this session goes below this (its resume point).
    floor: i64,
    /// True from a switch until the new session's first keyframe.
    resuming: bool,
    /// Metadata, video and audio sequence headers of the new session, held
    /// until its keyframe: only the latest of each kind, so an upstream that
    /// never sends a keyframe cannot grow it.
    held: [Option<Tag>; 3],
    /// Video was seen (then a session resumes on a video keyframe, else on any audio).
    has_video: bool,
    /// Sessions seen (the first is passed through unchanged).
    sessions: u64,
}

impl Rebaser {
    /// A rebaser before any session.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new upstream session starts (the first one, or after a switch).
    pub fn new_session(&mut self) {
        self.sessions += 1;
        self.held = Default::default();
        self.resuming = self.sessions > 1 && self.last_out.is_some();
        if !self.resuming {
            self.offset = 0;
            self.floor = 0;
        }
    }

    /// How many sessions have started.
    pub fn sessions(&self) -> u64 {
        self.sessions
    }

    /// Feeds one tag of the current session; returns the tags to send now.
    pub fn push(&mut self, tag: Tag) -> Vec<Tag> {
        if tag.kind == TagKind::Video {
            self.has_video = true;
        }
        if self.resuming {
            let config = tag.kind == TagKind::Script || tag.is_sequence_header();
            let starts = if self.has_video {
                tag.is_keyframe() && !tag.is_sequence_header()
            } else {
                tag.kind == TagKind::Audio && !tag.is_sequence_header()
            };
            if config {
                let slot = match tag.kind {
                    TagKind::Script => 0,
                    TagKind::Video => 1,
                    TagKind::Audio => 2,
                };
                self.held[slot] = Some(tag);
                return Vec::new();
            }
            if !starts {
                return Vec::new();
            }
            let resume = self.last_out.map_or(0, |l| l + SWITCH_GAP_MS);
            self.offset = resume - i64::from(tag.timestamp);
            self.floor = resume;
            self.resuming = false;
            let mut out: Vec<Tag> = std::mem::take(&mut self.held)
                .into_iter()
                .flatten()
                .collect();
            out.push(tag);
            for t in &mut out {
                t.timestamp = self.map(resume);
            }
            self.last_out = Some(resume);
            return out;
        }
        let raw = i64::from(tag.timestamp) + self.offset;
        let mut tag = tag;
        tag.timestamp = self.map(raw);
        let ts = raw.max(self.floor);
        self.last_out = Some(self.last_out.map_or(ts, |l| l.max(ts)));
        vec![tag]
    }

    /// An outgoing timestamp: at least the session's floor, on 32 bits.
    fn map(&self, ts: i64) -> u32 {
        let ts = ts.max(self.floor);
        // RTMP timestamps wrap at 2^32 ms; keep the low 32 bits.
        u32::try_from(ts.rem_euclid(1 << 32)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn video(ts: u32, key: bool) -> Tag {
        Tag {
            kind: TagKind::Video,
            timestamp: ts,
            data: Bytes::from(vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0]),
        }
    }
    fn avc_header(ts: u32) -> Tag {
        Tag {
            kind: TagKind::Video,
            timestamp: ts,
            data: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]),
        }
    }
    fn audio(ts: u32) -> Tag {
        Tag {
            kind: TagKind::Audio,
            timestamp: ts,
            data: Bytes::from_static(&[0xaf, 1, 9]),
        }
    }
    fn audio_header(ts: u32) -> Tag {
        Tag {
            kind: TagKind::Audio,
            timestamp: ts,
            data: Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
        }
    }
    fn meta(ts: u32) -> Tag {
        Tag {
            kind: TagKind::Script,
            timestamp: ts,
            data: Bytes::from_static(b"\x02\x00\x0aonMetaData"),
        }
    }
    fn stamps(v: &[Tag]) -> Vec<u32> {
        v.iter().map(|t| t.timestamp).collect()
    }

    #[test]
    fn first_session_passes_through_unchanged() {
        let mut r = Rebaser::new();
        r.new_session();
        let mut out = Vec::new();
        for t in [
            meta(0),
            avc_header(0),
            video(5000, true),
            audio(5010),
            video(5033, false),
        ] {
            out.extend(r.push(t));
        }
        assert_eq!(stamps(&out), vec![0, 0, 5000, 5010, 5033]);
    }

    #[test]
    fn switch_resumes_on_keyframe_after_the_last_timestamp() {
        let mut r = Rebaser::new();
        r.new_session();
        for t in [
            avc_header(0),
            video(9000, true),
            video(9033, false),
            audio(9040),
        ] {
            r.push(t);
        }
        r.new_session();
        // The new origin's GOP cache: metadata, headers, then a delta frame
        // from a cut GOP, then a keyframe.
        assert!(r.push(meta(0)).is_empty());
        assert!(r.push(avc_header(0)).is_empty());
        assert!(r.push(video(100, false)).is_empty());
        assert!(r.push(audio(110)).is_empty());
        let out = r.push(video(1000, true));
        assert_eq!(out.len(), 3, "metadata, header, keyframe");
        assert_eq!(out[0].kind, TagKind::Script);
        assert!(out[1].is_sequence_header());
        assert!(out[2].is_keyframe());
        let resume = 9040 + u32::try_from(SWITCH_GAP_MS).unwrap();
        assert_eq!(stamps(&out), vec![resume; 3]);
        assert_eq!(stamps(&r.push(video(1033, false))), vec![resume + 33]);
        // Audio slightly before the keyframe's time never goes backwards.
        assert_eq!(stamps(&r.push(audio(990))), vec![resume]);
    }

    #[test]
    fn resuming_holds_only_the_latest_of_each_kind() {
        let mut r = Rebaser::new();
        r.new_session();
        r.push(video(9000, true));
        r.new_session();
        // An upstream that keeps resending config and never a keyframe.
        for i in 0..1000 {
            assert!(r.push(meta(i)).is_empty());
            assert!(r.push(avc_header(i)).is_empty());
            assert!(r.push(audio_header(i)).is_empty());
        }
        assert_eq!(r.held.iter().flatten().count(), 3);
        let out = r.push(video(2000, true));
        assert_eq!(
            out.len(),
            4,
            "metadata, video header, audio header, keyframe"
        );
        assert_eq!(out[0].kind, TagKind::Script);
        assert_eq!(out[1].kind, TagKind::Video);
        assert!(out[1].is_sequence_header());
        assert_eq!(out[2].kind, TagKind::Audio);
        assert!(out[2].is_sequence_header());
        assert!(out[3].is_keyframe());
    }

    #[test]
    fn audio_only_streams_resume_on_audio() {
        let mut r = Rebaser::new();
        r.new_session();
        r.push(audio(500));
        r.new_session();
        assert_eq!(stamps(&r.push(audio(7))), vec![540]);
        assert_eq!(stamps(&r.push(audio(30))), vec![563]);
    }

    #[test]
    fn timestamps_wrap_on_32_bits() {
        let mut r = Rebaser::new();
        r.new_session();
        r.push(video(u32::MAX - 10, true));
        r.new_session();
        let out = r.push(video(0, true));
        assert_eq!(stamps(&out), vec![29]);
    }

    #[test]
    fn a_session_that_sent_nothing_does_not_count_as_a_switch() {
        let mut r = Rebaser::new();
        r.new_session();
        r.new_session();
        assert_eq!(stamps(&r.push(video(700, true))), vec![700]);
        assert_eq!(r.sessions(), 2);
    }
}
