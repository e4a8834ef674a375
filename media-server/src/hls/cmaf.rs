//! The CMAF (fMP4) side of HLS: parts and segments for the low-latency
//! playlist (`ll.m3u8`), beside the MPEG-TS segmenter.
//!
//! Fed the same tags at the same continuous timeline positions as the TS
//! segmenter (see `segmenter`), it cuts segments at the same keyframes and
//! parts at frame boundaries (`fmp4::fragment`). A segment's bytes are its
//! parts' bytes one after the other, so a player may fetch either. Names
//! come from the timeline: `seg-<first ms>.m4s` and `part-<first ms>.m4s`,
//! so every server cutting the same stream names and writes them the same.
//! The `prft` box is left out here: its wall-clock time differs between
//! servers and would break that (the live `/APP/NAME.mp4` stream has it).
//!
//! The part being filled is known by name before it is finished (its
//! first frame has arrived), which is what `EXT-X-PRELOAD-HINT` announces.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};

use crate::fmp4::{Fragmenter, FragmenterConfig, Part};
use crate::media::Tag;

/// Segments kept after leaving the playlist, for slow players.
const EXTRA_KEPT: usize = 3;
/// A segment larger than this is abandoned (a stream with no keyframes).
const MAX_SEGMENT_BYTES: usize = 64 << 20;

/// How parts and segments are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmafConfig {
    /// Segment target duration, ms (the TS segmenter's).
    pub target_ms: u64,
    /// Part target duration, ms.
    pub part_ms: u64,
    /// Segments listed.
    pub window: usize,
}

/// One finished part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmafPart {
    /// `part-<ms>.m4s`.
    pub name: String,
    /// Start on the continuous timeline, ms.
    pub start_ms: u64,
    /// Duration, ms.
    pub duration_ms: u64,
    /// Starts with a keyframe.
    pub independent: bool,
    /// The fMP4 bytes.
    pub data: Bytes,
}

/// One finished segment.
#[derive(Debug, Clone)]
pub struct CmafSegment {
    /// Media sequence number (this server's count).
    pub sequence: u64,
    /// `seg-<ms>.m4s`.
    pub name: String,
    /// Start on the continuous timeline, ms.
    pub start_ms: u64,
    /// Duration, ms.
    pub duration_ms: u64,
    /// First segment after a republish or codec change.
    pub discontinuity: bool,
    /// Discontinuities up to and including this one.
    pub discontinuity_count: u64,
    /// Wall-clock time of the first frame.
    pub program_date_time: Option<SystemTime>,
    /// Its parts.
    pub parts: Vec<CmafPart>,
    /// The parts' bytes concatenated.
    pub data: Bytes,
}

#[derive(Debug)]
struct OpenSegment {
    start_ms: u64,
    discontinuity: bool,
    program_date_time: Option<SystemTime>,
    parts: Vec<CmafPart>,
}

/// Parts and segments of one stream.
#[derive(Debug)]
pub struct CmafSegmenter {
    config: CmafConfig,
    fragmenter: Fragmenter,
    init: Option<Bytes>,
    codecs: String,
    open: Option<OpenSegment>,
    segments: VecDeque<CmafSegment>,
    next_sequence: u64,
    discontinuities: u64,
    max_segment_ms: u64,
    max_part_ms: u64,
    pending_discontinuity: bool,
    ended: bool,
    /// Wall-clock at session start, and the first timeline position seen.
    started: Option<SystemTime>,
    anchor: Option<(SystemTime, u64)>,
}

impl CmafSegmenter {
    /// An empty segmenter.
    pub fn new(config: CmafConfig) -> Self {
        let config = CmafConfig {
            target_ms: config.target_ms.max(100),
            part_ms: config.part_ms.clamp(50, config.target_ms.max(100)),
            window: config.window.max(1),
        };
        Self {
            config,
            fragmenter: Fragmenter::new(Self::fragmenter_config(config)),
            init: None,
            codecs: String::new(),
            open: None,
            segments: VecDeque::new(),
            next_sequence: 0,
            discontinuities: 0,
            max_segment_ms: 0,
            max_part_ms: 0,
            pending_discontinuity: false,
            ended: false,
            started: None,
            anchor: None,
        }
    }

    fn fragmenter_config(config: CmafConfig) -> FragmenterConfig {
        FragmenterConfig {
            part_ms: config.part_ms,
            segment_ms: Some(config.target_ms),
            prft: false,
        }
    }

    /// A publisher started (or restarted) the stream at `now`.
    pub fn start_session(&mut self, now: SystemTime) {
        if self.started.is_some() || !self.segments.is_empty() {
            self.flush();
            self.pending_discontinuity = true;
        }
        self.fragmenter = Fragmenter::new(Self::fragmenter_config(self.config));
        self.started = Some(now);
        self.anchor = None;
        self.ended = false;
    }

    /// The publisher left: what is open is finished and the playlist ends.
    pub fn end_session(&mut self) {
        self.flush();
        self.started = None;
        self.ended = true;
    }

    fn flush(&mut self) {
        if let Some(p) = self.fragmenter.finish(None) {
            self.add_part(p);
        }
        self.finish_segment();
    }

    /// True after the publisher left, until the next publish.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Feeds one tag at continuous timeline position `ms`; true if a part was finished.
    pub fn push(&mut self, tag: &Tag, ms: u64) -> bool {
        if self.anchor.is_none()
            && let Some(s) = self.started
        {
            self.anchor = Some((s, ms));
        }
        let part = self.fragmenter.push(tag, ms, None);
        if self.fragmenter.take_tracks_changed() {
            // A new init segment: what follows is a discontinuity, unless
            // nothing was cut in this session yet.
            if self.open.is_some() {
                self.pending_discontinuity = true;
            }
            self.init = self
                .fragmenter
                .tracks()
                .init_segment()
                .ok()
                .map(Bytes::from);
            self.codecs = self.fragmenter.tracks().codecs();
        }
        let Some(p) = part else {
            return false;
        };
        self.add_part(p);
        // The frame that finished the part starts the next segment: the
        // open one is complete now, not only when that part is.
        if self.fragmenter.open_starts_segment() {
            self.finish_segment();
        }
        true
    }

    fn add_part(&mut self, p: Part) {
        if p.starts_segment || self.open.is_none() {
            self.finish_segment();
            let program_date_time = self.anchor.and_then(|(wall, base)| {
                (wall > SystemTime::UNIX_EPOCH)
                    .then(|| wall + Duration::from_millis(p.start_ms.saturating_sub(base)))
            });
            self.open = Some(OpenSegment {
                start_ms: p.start_ms,
                discontinuity: std::mem::take(&mut self.pending_discontinuity),
                program_date_time,
                parts: Vec::new(),
            });
        }
        self.max_part_ms = self.max_part_ms.max(p.duration_ms);
        if let Some(open) = self.open.as_mut() {
            open.parts.push(CmafPart {
                name: format!("part-{}.m4s", p.start_ms),
                start_ms: p.start_ms,
                duration_ms: p.duration_ms,
                independent: p.independent,
                data: p.data,
            });
            if open.parts.iter().map(|p| p.data.len()).sum::<usize>() > MAX_SEGMENT_BYTES {
                tracing::warn!(
                    "CMAF segment over {MAX_SEGMENT_BYTES} bytes without a keyframe; dropped"
                );
                self.open = None;
                self.pending_discontinuity = true;
            }
        }
    }

    fn finish_segment(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        if open.parts.is_empty() {
            return;
        }
        let duration_ms = open.parts.iter().map(|p| p.duration_ms).sum();
        let mut data = BytesMut::with_capacity(open.parts.iter().map(|p| p.data.len()).sum());
        for p in &open.parts {
            data.extend_from_slice(&p.data);
        }
        if open.discontinuity {
            self.discontinuities += 1;
        }
        self.max_segment_ms = self.max_segment_ms.max(duration_ms);
        self.segments.push_back(CmafSegment {
            sequence: self.next_sequence,
            name: format!("seg-{}.m4s", open.start_ms),
            start_ms: open.start_ms,
            duration_ms,
            discontinuity: open.discontinuity,
            discontinuity_count: self.discontinuities,
            program_date_time: open.program_date_time,
            parts: open.parts,
            data: data.freeze(),
        });
        self.next_sequence += 1;
        while self.segments.len() > self.config.window + EXTRA_KEPT {
            self.segments.pop_front();
        }
    }

    /// Frees every held segment; numbering and the timeline continue.
    pub fn drop_segments(&mut self) {
        self.segments.clear();
    }

    /// Finished segments listed in the playlist, oldest first.
    pub fn window(&self) -> impl Iterator<Item = &CmafSegment> {
        let skip = self.segments.len().saturating_sub(self.config.window);
        self.segments.iter().skip(skip)
    }

    /// The segment being filled: its sequence number, discontinuity flag,
    /// date and finished parts.
    pub fn open_segment(&self) -> Option<(u64, bool, Option<SystemTime>, &[CmafPart])> {
        self.open.as_ref().map(|o| {
            (
                self.next_sequence,
                o.discontinuity,
                o.program_date_time,
                o.parts.as_slice(),
            )
        })
    }

    /// The name of the part being filled (the preload hint), if any.
    pub fn next_part_name(&self) -> Option<String> {
        if self.ended {
            return None;
        }
        self.fragmenter
            .open_start_ms()
            .map(|ms| format!("part-{ms}.m4s"))
    }

    /// Start of the part being filled, ms.
    pub fn next_part_ms(&self) -> Option<u64> {
        if self.ended {
            return None;
        }
        self.fragmenter.open_start_ms()
    }

    /// The sequence number the next finished segment gets.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// The current init segment.
    pub fn init(&self) -> Option<&Bytes> {
        self.init.as_ref()
    }

    /// The `CODECS` string of the current tracks.
    pub fn codecs(&self) -> &str {
        &self.codecs
    }

    /// A held segment or part by file name.
    pub fn file(&self, name: &str) -> Option<Bytes> {
        if name.starts_with("seg-") {
            return self
                .segments
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.data.clone());
        }
        let open = self.open.iter().flat_map(|o| o.parts.iter());
        self.segments
            .iter()
            .rev()
            .flat_map(|s| s.parts.iter())
            .chain(open)
            .find(|p| p.name == name)
            .map(|p| p.data.clone())
    }

    /// `EXT-X-TARGETDURATION`, seconds (never shrinks).
    pub fn target_duration_secs(&self) -> u64 {
        self.config
            .target_ms
            .max(self.max_segment_ms)
            .div_ceil(1000)
    }

    /// `PART-TARGET`, ms: the configured part duration, or a longer part seen.
    pub fn part_target_ms(&self) -> u64 {
        self.config.part_ms.max(self.max_part_ms)
    }
}

#[cfg(test)]
#[path = "cmaf_tests.rs"]
pub(crate) mod tests;
