//! Cuts the tag stream into CMAF fragments (`moof` + `mdat`), one per part.
//!
//! A part starts at a video frame (at an audio frame for audio-only streams)
//! when that frame would make the open part longer than the part duration,
//! and always at a segment boundary. Segment boundaries follow the MPEG-TS
//! segmenter's rule (`hls::segmenter`): the first keyframe in a later
//! target-duration slot than the segment's first frame. Both rules depend
//! only on the stream's timeline, so every server fed the same tags writes
//! the same parts. A part is finished when the frame that starts the next
//! one arrives, which gives its last video sample an exact duration.

use std::time::SystemTime;

use bytes::Bytes;
use mp4_atom::{
    Encode, FourCC, Mdat, Mfhd, Moof, Prft, ReferenceTime, Styp, Tfdt, Tfhd, Traf, Trun, TrunEntry,
    TrunSamples,
};

use super::init::{AudioTrack, Tracks, VideoTrack};
use super::{AUDIO_TRACK, Fmp4Error, VIDEO_TIMESCALE, VIDEO_TRACK};
use crate::media::{AUDIO_FORMAT_AAC, Tag, TagKind, VIDEO_CODEC_AVC};

/// `sample_depends_on` = 2: a sync sample (ISO/IEC 14496-12 8.8.3.1).
const SYNC: u32 = 0x0200_0000;
/// `sample_depends_on` = 1 and `sample_is_non_sync_sample`.
const NON_SYNC: u32 = 0x0101_0000;
/// Samples per AAC frame: the last audio sample of a part has no successor.
const AAC_FRAME: u32 = 1024;
/// A part holding more than this is dropped (a publisher whose video
/// stopped while audio goes on, or absurd frames): memory stays bounded.
const MAX_PART_BYTES: usize = 32 << 20;
/// Seconds from the NTP epoch (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// How the stream is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmenterConfig {
    /// Longest part, ms (0: one part per video frame).
    pub part_ms: u64,
    /// Segment target duration, ms, or `None` for a plain fragment stream.
    pub segment_ms: Option<u64>,
    /// Put a `prft` box (wall-clock time of the part's first frame) before each `moof`.
    pub prft: bool,
}

/// One finished part: a CMAF chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// First frame's timestamp on the caller's timeline, ms.
    pub start_ms: u64,
    /// Up to the start of the next part, ms.
    pub duration_ms: u64,
    /// Starts with a keyframe (always true for audio-only streams).
    pub independent: bool,
    /// First part of a segment (carries `styp`).
    pub starts_segment: bool,
    /// `[styp] [prft] moof mdat`.
    pub data: Bytes,
}

#[derive(Debug)]
struct Sample {
    ms: u64,
    cts_ms: i32,
    keyframe: bool,
    data: Bytes,
}

#[derive(Debug)]
struct Open {
    bytes: usize,
    start_ms: u64,
    independent: bool,
    starts_segment: bool,
    received: Option<SystemTime>,
    video: Vec<Sample>,
    audio: Vec<Sample>,
}

/// The fragmenter of one stream (see the module docs).
#[derive(Debug)]
pub struct Fragmenter {
    config: FragmenterConfig,
    tracks: Tracks,
    tracks_changed: bool,
    open: Option<Open>,
    segment_start: Option<u64>,
    last_cut_ms: Option<u64>,
    interval_ms: u64,
}

impl Fragmenter {
    /// A fragmenter that has seen nothing yet.
    pub fn new(config: FragmenterConfig) -> Self {
        Self {
            config,
            tracks: Tracks::default(),
            tracks_changed: false,
            open: None,
            segment_start: None,
            last_cut_ms: None,
            interval_ms: 0,
        }
    }

    /// The codec configuration seen so far.
    pub fn tracks(&self) -> &Tracks {
        &self.tracks
    }

    /// Start of the part being filled (the next one to finish), ms.
    pub fn open_start_ms(&self) -> Option<u64> {
        self.open.as_ref().map(|o| o.start_ms)
    }

    /// True if the part being filled starts a segment (the previous segment is complete).
    pub fn open_starts_segment(&self) -> bool {
        self.open.as_ref().is_some_and(|o| o.starts_segment)
    }

    /// True once since the tracks last changed (a new init segment is due).
    pub fn take_tracks_changed(&mut self) -> bool {
        std::mem::take(&mut self.tracks_changed)
    }

    /// Feeds one tag at timeline position `ms`, received at `now` (for
    /// `prft`). Returns the part this tag finished, if any. Tags of other
    /// codecs and malformed codec records are skipped.
    pub fn push(&mut self, tag: &Tag, ms: u64, now: Option<SystemTime>) -> Option<Part> {
        match tag.kind {
            TagKind::Video => self.push_video(tag, ms, now),
            TagKind::Audio => self.push_audio(tag, ms, now),
            TagKind::Script => None,
        }
    }

    fn push_video(&mut self, tag: &Tag, ms: u64, now: Option<SystemTime>) -> Option<Part> {
        // Legacy AVC only: codec id 7, packet type 0 (config) or 1 (NALUs).
        if tag.data.first().map(|b| b & 0x8f) != Some(VIDEO_CODEC_AVC) || tag.data.len() < 5 {
            return None;
        }
        if tag.data[1] == 0 {
            let track = VideoTrack::from_record(&tag.data[5..]).ok()?;
            return self.set_tracks(Some(track), self.tracks.audio.clone(), ms);
        }
        if tag.data[1] != 1 || self.tracks.video.is_none() {
            return None;
        }
        let keyframe = tag.is_keyframe();
        let done = self.cut(ms, keyframe, now);
        let open = self.open_with_room(tag.data.len())?;
        open.video.push(Sample {
            ms,
            cts_ms: tag.composition_time(),
            keyframe,
            data: tag.data.slice(5..),
        });
        done
    }

    fn push_audio(&mut self, tag: &Tag, ms: u64, now: Option<SystemTime>) -> Option<Part> {
        if tag.data.first().map(|b| b >> 4) != Some(AUDIO_FORMAT_AAC) || tag.data.len() < 2 {
            return None;
        }
        if tag.data[1] == 0 {
            let track = AudioTrack::from_asc(&tag.data[2..]).ok()?;
            return self.set_tracks(self.tracks.video.clone(), Some(track), ms);
        }
        self.tracks.audio.as_ref()?;
        let done = if self.tracks.video.is_none() {
            self.cut(ms, true, now)
        } else {
            None
        };
        let open = self.open_with_room(tag.data.len())?;
        open.audio.push(Sample {
            ms,
            cts_ms: 0,
            keyframe: true,
            data: tag.data.slice(2..),
        });
        done
    }

    /// The open part, if `more` bytes still fit; else the part is dropped.
    fn open_with_room(&mut self, more: usize) -> Option<&mut Open> {
        let open = self.open.as_mut()?;
        open.bytes += more;
        if open.bytes > MAX_PART_BYTES {
            tracing::warn!("fMP4 part over {MAX_PART_BYTES} bytes; dropped");
            self.open = None;
            // Start again at a keyframe, in a new segment.
            self.segment_start = None;
            return None;
        }
        self.open.as_mut()
    }

    fn set_tracks(
        &mut self,
        video: Option<VideoTrack>,
        audio: Option<AudioTrack>,
        ms: u64,
    ) -> Option<Part> {
        let next = Tracks { video, audio };
        if next == self.tracks {
            return None;
        }
        // New codec data: what is open was made for the old init segment.
        let done = self.finish(Some(ms));
        self.segment_start = None;
        self.tracks = next;
        self.tracks_changed = true;
        done
    }

    /// Decides whether the frame at `ms` starts a part; returns the part it ends.
    fn cut(&mut self, ms: u64, independent: bool, now: Option<SystemTime>) -> Option<Part> {
        if let Some(last) = self.last_cut_ms
            && ms > last
        {
            self.interval_ms = ms - last;
        }
        self.last_cut_ms = Some(ms);
        let starts_segment = independent
            && match (self.config.segment_ms, self.segment_start) {
                (_, None) => true,
                (Some(t), Some(s)) => ms / t > s / t && ms > s,
                (None, Some(_)) => false,
            };
        let starts_part = match &self.open {
            None => independent,
            Some(o) => {
                starts_segment
                    || (ms > o.start_ms && ms + self.interval_ms > o.start_ms + self.config.part_ms)
            }
        };
        if !starts_part {
            return None;
        }
        let done = self.finish(Some(ms));
        if starts_segment {
            self.segment_start = Some(ms);
        }
        self.open = Some(Open {
            bytes: 0,
            start_ms: ms,
            independent,
            starts_segment,
            received: now,
            video: Vec::new(),
            audio: Vec::new(),
        });
        done
    }

    /// Finishes the open part, ending at `end_ms` (`None`: one frame
    /// interval after its last frame). Used at the end of a session.
    pub fn finish(&mut self, end_ms: Option<u64>) -> Option<Part> {
        let open = self.open.take()?;
        let last_ms = open
            .video
            .last()
            .or(open.audio.last())
            .map_or(open.start_ms, |s| s.ms);
        let end_ms = end_ms.unwrap_or(last_ms + self.interval_ms.max(1));
        match write_part(&self.tracks, &open, end_ms, self.config.prft) {
            Ok(data) => Some(Part {
                start_ms: open.start_ms,
                duration_ms: end_ms.saturating_sub(open.start_ms),
                independent: open.independent,
                starts_segment: open.starts_segment,
                data: Bytes::from(data),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "fMP4 part dropped");
                None
            }
        }
    }
}

fn to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn video_traf(samples: &[Sample], end_ms: u64) -> Traf {
    let entries = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let next = samples.get(i + 1).map_or(end_ms, |n| n.ms);
            TrunEntry {
                duration: Some(to_u32(next.saturating_sub(s.ms) * 90)),
                size: Some(to_u32(s.data.len() as u64)),
                flags: Some(if s.keyframe { SYNC } else { NON_SYNC }),
                cts: Some(i64::from(s.cts_ms) * 90),
            }
        })
        .collect();
    traf(
        VIDEO_TRACK,
        samples.first().map_or(0, |s| s.ms * 90),
        entries,
        None,
    )
}

fn audio_traf(samples: &[Sample], rate: u32, audio_only_end: Option<u64>) -> Traf {
    let ticks = |ms: u64| ms * u64::from(rate) / 1000;
    let entries = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let duration = match (samples.get(i + 1), audio_only_end) {
                (Some(n), _) => to_u32(ticks(n.ms).saturating_sub(ticks(s.ms))),
                (None, Some(end)) => to_u32(ticks(end).saturating_sub(ticks(s.ms))),
                (None, None) => AAC_FRAME,
            };
            TrunEntry {
                duration: Some(duration),
                size: Some(to_u32(s.data.len() as u64)),
                flags: None,
                cts: None,
            }
        })
        .collect();
    traf(
        AUDIO_TRACK,
        samples.first().map_or(0, |s| ticks(s.ms)),
        entries,
        Some(SYNC),
    )
}

fn traf(track_id: u32, base: u64, entries: Vec<TrunEntry>, default_flags: Option<u32>) -> Traf {
    Traf {
        tfhd: Tfhd {
            track_id,
            default_sample_flags: default_flags,
            default_base_is_moof: true,
            ..Default::default()
        },
        tfdt: Some(Tfdt {
            base_media_decode_time: base,
        }),
        trun: vec![Trun {
            data_offset: Some(0),
            samples: TrunSamples::Explicit(entries),
        }],
        sbgp: vec![],
        sgpd: vec![],
        subs: vec![],
        saiz: vec![],
        saio: vec![],
        meta: None,
        senc: None,
        udta: None,
    }
}

/// `[styp] [prft] moof mdat` for one part.
fn write_part(tracks: &Tracks, open: &Open, end_ms: u64, prft: bool) -> Result<Vec<u8>, Fmp4Error> {
    let mut trafs = Vec::new();
    let mut payloads: Vec<&Bytes> = Vec::new();
    let video = tracks.video.is_some() && !open.video.is_empty();
    if video {
        trafs.push(video_traf(&open.video, end_ms));
        payloads.extend(open.video.iter().map(|s| &s.data));
    }
    if let Some(a) = &tracks.audio
        && !open.audio.is_empty()
    {
        let audio_only_end = tracks.video.is_none().then_some(end_ms);
        trafs.push(audio_traf(&open.audio, a.sample_rate, audio_only_end));
        payloads.extend(open.audio.iter().map(|s| &s.data));
    }
    let mut moof = Moof {
        mfhd: Mfhd {
            // Increasing and the same on every server: the part's start.
            sequence_number: to_u32(open.start_ms & 0xffff_ffff),
        },
        traf: trafs,
    };
    let mut probe = Vec::new();
    moof.encode(&mut probe)
        .map_err(|e| Fmp4Error::Encode("moof", e))?;
    // Sample data offsets are from the start of the moof (default-base-is-moof).
    let mut offset = probe.len() as u64 + 8;
    for t in &mut moof.traf {
        if let Some(run) = t.trun.first_mut() {
            run.data_offset = Some(i32::try_from(offset).unwrap_or(i32::MAX));
            offset += run
                .samples
                .iter()
                .map(|e| u64::from(e.size.unwrap_or(0)))
                .sum::<u64>();
        }
    }
    let mdat_len: usize = payloads.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(probe.len() + mdat_len + 96);
    if open.starts_segment {
        Styp {
            major_brand: FourCC::new(b"msdh"),
            minor_version: 0,
            compatible_brands: vec![FourCC::new(b"msdh"), FourCC::new(b"msix")],
        }
        .encode(&mut out)
        .map_err(|e| Fmp4Error::Encode("styp", e))?;
    }
    if prft && let Some(received) = open.received {
        let (track, media_time) = match (open.video.first(), open.audio.first(), &tracks.audio) {
            (Some(v), _, _) if video => (VIDEO_TRACK, v.ms * u64::from(VIDEO_TIMESCALE) / 1000),
            (_, Some(s), Some(a)) => (AUDIO_TRACK, s.ms * u64::from(a.sample_rate) / 1000),
            _ => (VIDEO_TRACK, 0),
        };
        Prft {
            reference_track_id: track,
            ntp_timestamp: ntp(received),
            media_time,
            utc_time_semantics: ReferenceTime::Input,
        }
        .encode(&mut out)
        .map_err(|e| Fmp4Error::Encode("prft", e))?;
    }
    moof.encode(&mut out)
        .map_err(|e| Fmp4Error::Encode("moof", e))?;
    let mut data = Vec::with_capacity(mdat_len);
    for p in payloads {
        data.extend_from_slice(p);
    }
    Mdat { data }
        .encode(&mut out)
        .map_err(|e| Fmp4Error::Encode("mdat", e))?;
    Ok(out)
}

/// A wall-clock time as a 64-bit NTP timestamp (32.32 fixed point since 1900).
pub fn ntp(t: SystemTime) -> u64 {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

#[cfg(test)]
#[path = "fragment_tests.rs"]
mod tests;
