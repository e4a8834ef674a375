//! The live media playlist, written with `m3u8-rs`.

use chrono::{DateTime, FixedOffset, Utc};
use m3u8_rs::{MediaPlaylist, MediaSegment};

use super::segmenter::Segmenter;

/// Renders the segmenter's window as an HLS media playlist (version 3).
pub fn render(segmenter: &Segmenter) -> String {
    let window: Vec<_> = segmenter.window().collect();
    let media_sequence = window.first().map_or(0, |s| s.sequence);
    // Discontinuities before the first listed segment.
    let discontinuity_sequence = window
        .first()
        .map_or(0, |s| s.discontinuity_count - u64::from(s.discontinuity));
    let segments = window
        .iter()
        .map(|s| MediaSegment {
            uri: s.name.clone(),
            #[allow(clippy::cast_precision_loss)]
            duration: s.duration_ms as f32 / 1000.0,
            discontinuity: s.discontinuity,
            program_date_time: s.program_date_time.map(|t| {
                let utc: DateTime<Utc> = t.into();
                utc.with_timezone(
                    &FixedOffset::east_opt(0).unwrap_or(utc.fixed_offset().timezone()),
                )
            }),
            ..MediaSegment::empty()
        })
        .collect();
    let playlist = MediaPlaylist {
        version: Some(3),
        target_duration: segmenter.target_duration_secs(),
        media_sequence,
        discontinuity_sequence,
        segments,
        end_list: segmenter.ended(),
        ..MediaPlaylist::default()
    };
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = playlist.write_to(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
