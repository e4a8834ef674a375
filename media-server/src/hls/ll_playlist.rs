//! The low-latency media playlist (`ll.m3u8`, RFC 8216bis with its
//! LL-HLS tags) and the blocking-reload rules. Written by hand: m3u8-rs
//! (used for the TS playlist) has no LL-HLS tags.
//!
//! Tag order: header tags (`VERSION`, `TARGETDURATION`, `SERVER-CONTROL`,
//! `PART-INF`, `MEDIA-SEQUENCE`, `DISCONTINUITY-SEQUENCE`, `MAP`), then
//! `EXT-X-SKIP` for a delta update, then each segment with its parts, then
//! the parts of the segment being filled and the `PRELOAD-HINT` of the part
//! after them. Parts are listed for the last [`PART_SEGMENTS`] segments only.

use std::fmt::Write as _;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};

use super::cmaf::{CmafPart, CmafSegmenter};

/// Name of the playlist.
pub const PLAYLIST: &str = "ll.m3u8";
/// Name of the init segment.
pub const INIT: &str = "init.mp4";
/// Finished segments whose parts are still listed (the spec asks for
/// parts within three target durations of the live edge).
pub const PART_SEGMENTS: usize = 3;
/// How far ahead (in parts) a blocking request may ask before it is a 400.
const ADVANCE_PART_LIMIT: u64 = 3;
/// `_HLS_msn` beyond the last segment + this is a 400.
const ADVANCE_MSN_LIMIT: u64 = 2;

/// `CAN-SKIP-UNTIL` in target durations (the spec's minimum is six).
const SKIP_TARGETS: u64 = 6;

fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn date(t: SystemTime) -> String {
    let utc: DateTime<Utc> = t.into();
    utc.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `name`, with the request's query carried over (a signed URL's token).
fn uri(name: &str, query: &str) -> String {
    if query.is_empty() {
        name.to_owned()
    } else {
        format!("{name}?{query}")
    }
}

fn write_part(out: &mut String, p: &CmafPart, query: &str) {
    let _ = write!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"{}\"",
        secs(p.duration_ms),
        uri(&p.name, query)
    );
    if p.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    out.push('\n');
}

/// Renders the playlist; `skip` asks for a delta update (`_HLS_skip=YES`).
/// `query` (the request's, without `_HLS_` directives) is appended to every
/// URI, so players keep presenting a playback token on each request.
pub fn render(seg: &CmafSegmenter, skip: bool, query: &str) -> String {
    let target = seg.target_duration_secs();
    let part_target = seg.part_target_ms();
    let window: Vec<_> = seg.window().collect();
    let open = seg.open_segment();
    let media_sequence = window
        .first()
        .map(|s| s.sequence)
        .or(open.map(|o| o.0))
        .unwrap_or(0);
    let discontinuity_sequence = window
        .first()
        .map_or(0, |s| s.discontinuity_count - u64::from(s.discontinuity));
    let skip_until_ms = SKIP_TARGETS * target * 1000;
    let mut out = String::with_capacity(4096);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:9\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={},PART-HOLD-BACK={}",
        secs(skip_until_ms),
        secs(3 * part_target)
    );
    let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", secs(part_target));
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
    if discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}"
        );
    }
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", uri(INIT, query));
    // Delta update: segments ending more than CAN-SKIP-UNTIL before the
    // end of the playlist are replaced by one EXT-X-SKIP.
    let total_ms: u64 = window.iter().map(|s| s.duration_ms).sum::<u64>()
        + open.map_or(0, |o| o.3.iter().map(|p| p.duration_ms).sum());
    let mut skipped = 0;
    if skip {
        let mut end = 0;
        for s in &window {
            end += s.duration_ms;
            if total_ms - end > skip_until_ms {
                skipped += 1;
            } else {
                break;
            }
        }
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }
    let parts_from = window.len().saturating_sub(PART_SEGMENTS);
    for (i, s) in window.iter().enumerate().skip(skipped) {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(t) = s.program_date_time {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", date(t));
        }
        if i >= parts_from {
            for p in &s.parts {
                write_part(&mut out, p, query);
            }
        }
        let _ = writeln!(
            out,
            "#EXTINF:{},\n{}",
            secs(s.duration_ms),
            uri(&s.name, query)
        );
    }
    if let Some((_, discontinuity, pdt, parts)) = open {
        if discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(t) = pdt {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", date(t));
        }
        for p in parts {
            write_part(&mut out, p, query);
        }
    }
    if let Some(hint) = seg.next_part_name() {
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            uri(&hint, query)
        );
    }
    if seg.ended() {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// What a blocking playlist request (`_HLS_msn`, `_HLS_part`) should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocking {
    /// The asked segment or part is in the playlist: answer.
    Ready,
    /// Not yet: wait for the next change.
    Wait,
    /// Too far ahead of the playlist (or `_HLS_part` alone): 400.
    BadRequest,
}

/// Whether segment `msn` (or its part `part`) is in the playlist now
/// (RFC 8216bis 6.2.5.2). A part index past the segment's last part means
/// the next segment's first part.
pub fn blocking(seg: &CmafSegmenter, msn: Option<u64>, part: Option<u64>) -> Blocking {
    let Some(msn) = msn else {
        return if part.is_some() {
            Blocking::BadRequest
        } else {
            Blocking::Ready
        };
    };
    if seg.ended() {
        return Blocking::Ready;
    }
    let next = seg.next_sequence(); // the open segment's number
    let parts_open = seg.open_segment().map_or(0, |o| o.3.len() as u64);
    // The last segment in the playlist: the open one once it has parts.
    let last = if parts_open > 0 {
        next
    } else {
        next.saturating_sub(1)
    };
    if msn > last + ADVANCE_MSN_LIMIT {
        return Blocking::BadRequest;
    }
    if msn < next {
        return Blocking::Ready;
    }
    match part {
        Some(p) if msn == next && p < parts_open => Blocking::Ready,
        // Past the last listed part by more than the advance limit.
        Some(p) if msn == next && p + 1 > parts_open + ADVANCE_PART_LIMIT => Blocking::BadRequest,
        _ => Blocking::Wait,
    }
}

#[cfg(test)]
#[path = "ll_playlist_tests.rs"]
mod tests;
