//! Cuts a stream's tags into MPEG-TS segments and keeps the live window.
//!
//! Cutting is a function of the stream's timeline alone, so every server fed
//! the same tags cuts in the same places and names segments the same:
//! a segment ends at the first keyframe whose timestamp falls in a later
//! target-duration slot (`dts / target`) than the segment's first frame.
//! A server that joins late (an edge) aligns with the origin from its second
//! segment on. Segment bytes depend only on their own tags (fresh PAT/PMT and
//! continuity counters each time) and are named `seg-<first dts in ms>.ts`.
//!
//! The timeline is continuous across republish: a new publisher's timestamps
//! are shifted to continue after the last segment, so names and media
//! sequence numbers stay monotonic, and the first segment of the new session
//! carries `EXT-X-DISCONTINUITY`.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::media::{Tag, TagKind};
use crate::ts::{Muxed, TsMuxer};

/// A segment larger than this is abandoned (a stream with no keyframes).
const MAX_SEGMENT_BYTES: usize = 64 << 20;
/// Segments kept in memory after leaving the playlist, for slow players.
const EXTRA_KEPT: usize = 3;

/// How segments are cut and how many are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Target segment duration in milliseconds.
    pub target_ms: u64,
    /// Segments listed in the live playlist.
    pub window: usize,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            target_ms: 2000,
            window: 6,
        }
    }
}

/// One finished segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Media sequence number.
    pub sequence: u64,
    /// File name in the playlist, e.g. `seg-12000.ts`.
    pub name: String,
    /// First frame's timestamp on the continuous timeline, ms.
    pub start_ms: u64,
    /// Duration in ms.
    pub duration_ms: u64,
    /// First segment after a republish.
    pub discontinuity: bool,
    /// Discontinuities up to and including this segment.
    pub discontinuity_count: u64,
    /// Wall-clock time of the first frame.
    pub program_date_time: Option<SystemTime>,
    /// The MPEG-TS bytes.
    pub data: Bytes,
}

#[derive(Debug)]
struct Open {
    start_ms: u64,
    data: Vec<u8>,
    discontinuity: bool,
    program_date_time: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    /// Added to the publisher's timestamps to get the continuous timeline.
    offset: i64,
    /// Wall clock and continuous time of the session's first tag.
    anchor: Option<(SystemTime, u64)>,
    started: SystemTime,
    last_raw: Option<u32>,
}

/// The HLS segmenter for one stream.
#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    muxer: TsMuxer,
    open: Option<Open>,
    segments: VecDeque<Segment>,
    next_sequence: u64,
    discontinuities: u64,
    max_duration_ms: u64,
    session: Option<Session>,
    /// End of the timeline so far (last frame + one frame interval), ms.
    timeline_end: Option<u64>,
    last_video_ms: Option<u64>,
    frame_interval_ms: u64,
    pending_discontinuity: bool,
    ended: bool,
    /// The last `onMetaData` seen (a different one mid-session cuts).
    last_metadata: Option<Bytes>,
    /// Continuous timeline position of the last tag pushed (the CMAF cutter follows it).
    last_ms: Option<u64>,
}

/// What `push` did with a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Nothing finished.
    Buffered,
    /// A segment was finished and added to the window.
    SegmentDone,
}

impl Segmenter {
    /// An empty segmenter; call [`Segmenter::start_session`] on publish.
    pub fn new(config: SegmenterConfig) -> Self {
        Self {
            config: SegmenterConfig {
                target_ms: config.target_ms.max(100),
                window: config.window.max(1),
            },
            muxer: TsMuxer::new(),
            open: None,
            segments: VecDeque::new(),
            next_sequence: 0,
            discontinuities: 0,
            max_duration_ms: 0,
            session: None,
            timeline_end: None,
            last_video_ms: None,
            frame_interval_ms: 0,
            pending_discontinuity: false,
            ended: false,
            last_metadata: None,
            last_ms: None,
        }
    }

    /// Continuous timeline position of the last tag pushed, ms.
    pub fn last_ms(&self) -> Option<u64> {
        self.last_ms
    }

    /// A publisher started (or restarted) the stream at wall-clock `now`.
    pub fn start_session(&mut self, now: SystemTime) {
        if self.session.is_some() || !self.segments.is_empty() {
            self.finish_open();
            self.pending_discontinuity = true;
        }
        self.session = Some(Session {
            offset: 0,
            anchor: None,
            started: now,
            last_raw: None,
        });
        self.muxer = TsMuxer::new();
        self.ended = false;
    }

    /// The publisher left: the last segment is finished and the playlist ends.
    pub fn end_session(&mut self) {
        self.finish_open();
        self.session = None;
        self.ended = true;
    }

    /// True after [`Segmenter::end_session`] until the next publish.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Feeds one tag. Malformed codec data drops that tag only.
    pub fn push(&mut self, tag: &Tag) -> Pushed {
        if self.session.is_none() {
            self.start_session(SystemTime::UNIX_EPOCH);
        }
        let ms = self.continuous(tag.timestamp);
        self.last_ms = Some(ms);
        if tag.is_sequence_header() {
            let mut scratch = Vec::new();
            let _ = self.muxer.write_tag(tag, ms, &mut scratch);
            return Pushed::Buffered;
        }
        if tag.kind == TagKind::Script {
            // Different metadata in the middle of a session: another encoder
            // session follows (an edge resuming a stream on another origin
            // sends the new origin's metadata just before its first
            // keyframe). End the segment here and mark a discontinuity.
            // The same metadata again (encoders that resend it now and
            // then) changes nothing.
            if crate::flv::script_name(&tag.data) != Some("onMetaData") {
                return Pushed::Buffered;
            }
            let changed = self
                .last_metadata
                .replace(tag.data.clone())
                .is_some_and(|prev| prev != tag.data);
            if self.open.is_some() && changed {
                let done = self.finish_open_at(ms);
                self.pending_discontinuity = true;
                return if done {
                    Pushed::SegmentDone
                } else {
                    Pushed::Buffered
                };
            }
            return Pushed::Buffered;
        }
        let starts_gop = if self.muxer.has_video() {
            tag.is_keyframe()
        } else {
            tag.kind == TagKind::Audio && self.muxer.has_audio()
        };
        let mut done = Pushed::Buffered;
        let slot = |t: u64| t / self.config.target_ms;
        if starts_gop {
            let cut = self
                .open
                .as_ref()
                .is_none_or(|o| slot(ms) > slot(o.start_ms) && ms > o.start_ms);
            if cut {
                if self.finish_open_at(ms) {
                    done = Pushed::SegmentDone;
                }
                self.begin_segment(ms);
            }
        }
        if tag.kind == TagKind::Video {
            if let Some(prev) = self.last_video_ms
                && ms > prev
            {
                self.frame_interval_ms = ms - prev;
            }
            self.last_video_ms = Some(ms);
        }
        let end = ms
            + if tag.kind == TagKind::Video {
                self.frame_interval_ms
            } else {
                0
            };
        self.timeline_end = Some(self.timeline_end.map_or(end, |e| e.max(end)));
        if let Some(open) = self.open.as_mut()
            && self.muxer.write_tag(tag, ms, &mut open.data) == Ok(Muxed::Frame)
            && open.data.len() > MAX_SEGMENT_BYTES
        {
            tracing::warn!(
                "HLS segment over {MAX_SEGMENT_BYTES} bytes without a keyframe; dropped"
            );
            self.open = None;
            self.pending_discontinuity = true;
        }
        done
    }

    fn continuous(&mut self, raw: u32) -> u64 {
        let timeline_end = self.timeline_end;
        let Some(session) = self.session.as_mut() else {
            return u64::from(raw);
        };
        match session.last_raw {
            None => {
                // First tag of the session: continue after what came before.
                if let Some(end) = timeline_end {
                    session.offset = i64::try_from(end).unwrap_or(0) - i64::from(raw);
                }
            }
            // 32-bit millisecond wrap (every ~49.7 days).
            Some(last) if last > raw && last - raw > u32::MAX / 2 => session.offset += 1 << 32,
            Some(_) => {}
        }
        session.last_raw = Some(raw);
        let ms = u64::try_from(i64::from(raw) + session.offset).unwrap_or(0);
        if session.anchor.is_none() {
            session.anchor = Some((session.started, ms));
        }
        ms
    }

    fn begin_segment(&mut self, start_ms: u64) {
        let mut data = Vec::with_capacity(256 * 1024);
        self.muxer.begin_segment(&mut data);
        let program_date_time = self
            .session
            .and_then(|s| s.anchor)
            .and_then(|(wall, base)| {
                (wall > SystemTime::UNIX_EPOCH)
                    .then(|| wall + Duration::from_millis(start_ms.saturating_sub(base)))
            });
        self.open = Some(Open {
            start_ms,
            data,
            discontinuity: std::mem::take(&mut self.pending_discontinuity),
            program_date_time,
        });
    }

    fn finish_open(&mut self) {
        let end = self.timeline_end.unwrap_or(0);
        self.finish_open_at(end);
    }

    /// Closes the open segment ending at `end_ms`; true if one was added.
    fn finish_open_at(&mut self, end_ms: u64) -> bool {
        let Some(open) = self.open.take() else {
            return false;
        };
        let duration_ms = end_ms.saturating_sub(open.start_ms);
        if open.discontinuity {
            self.discontinuities += 1;
        }
        self.max_duration_ms = self.max_duration_ms.max(duration_ms);
        self.segments.push_back(Segment {
            sequence: self.next_sequence,
            name: format!("seg-{}.ts", open.start_ms),
            start_ms: open.start_ms,
            duration_ms,
            discontinuity: open.discontinuity,
            discontinuity_count: self.discontinuities,
            program_date_time: open.program_date_time,
            data: Bytes::from(open.data),
        });
        self.next_sequence += 1;
        while self.segments.len() > self.config.window + EXTRA_KEPT {
            self.segments.pop_front();
        }
        true
    }

    /// Frees every held segment; numbering and the timeline continue.
    pub fn drop_segments(&mut self) {
        self.segments.clear();
    }

    /// Segments listed in the playlist, oldest first.
    pub fn window(&self) -> impl Iterator<Item = &Segment> {
        let skip = self.segments.len().saturating_sub(self.config.window);
        self.segments.iter().skip(skip)
    }

    /// A segment still held in memory, by name.
    pub fn segment(&self, name: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.name == name)
    }

    /// `EXT-X-TARGETDURATION` in seconds: the configured target or the
    /// longest segment so far, rounded up, whichever is larger; it never
    /// shrinks, as the spec requires.
    pub fn target_duration_secs(&self) -> u64 {
        self.config
            .target_ms
            .max(self.max_duration_ms)
            .div_ceil(1000)
    }

    /// The configured target duration in ms.
    pub fn target_ms(&self) -> u64 {
        self.config.target_ms
    }
}

#[cfg(test)]
#[path = "segmenter_tests.rs"]
mod tests;
