//! How fast one core packages a stream as HLS: feeds the segmenter a
//! synthetic 30 fps H.264 + AAC stream (sizes of a ~2.5 Mbit/s encode) and
//! prints throughput and the multiple of real time.
//!
//! `cargo run --release -p fleetcast-media --example hls_mux_throughput [minutes]`
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use std::time::Instant;

use bytes::Bytes;
use fleetcast_media::hls::{Segmenter, SegmenterConfig};
use fleetcast_media::media::{Tag, TagKind};
use fleetcast_media::ts::codec::AvcConfig;

fn video(ts: u32, key: bool, size: usize) -> Tag {
    let mut data = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    data.extend_from_slice(&u32::try_from(size).unwrap_or(0).to_be_bytes());
    data.push(if key { 0x65 } else { 0x41 });
    data.extend((1..size).map(|i| (i as u8) ^ (ts as u8)));
    Tag {
        kind: TagKind::Video,
        timestamp: ts,
        data: Bytes::from(data),
    }
}

fn main() {
    let minutes: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let mut tags = Vec::new();
    let mut seq = vec![0x17, 0, 0, 0, 0];
    seq.extend(AvcConfig::record(
        &[&[0x67, 0x64, 0, 0x1f, 0xac]],
        &[&[0x68, 0xeb]],
    ));
    tags.push(Tag {
        kind: TagKind::Video,
        timestamp: 0,
        data: Bytes::from(seq),
    });
    tags.push(Tag {
        kind: TagKind::Audio,
        timestamp: 0,
        data: Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
    });
    let end_ms = minutes * 60_000;
    let (mut v, mut a) = (0u32, 0u32);
    loop {
        let vt = u32::try_from(u64::from(v) * 100 / 3).unwrap_or(u32::MAX);
        let at = u32::try_from(u64::from(a) * 1024 * 1000 / 44100).unwrap_or(u32::MAX);
        if vt >= end_ms && at >= end_ms {
            break;
        }
        if vt <= at {
            // Keyframe every second (~60 KB), inter frames ~9 KB: ~2.5 Mbit/s.
            let key = v % 30 == 0;
            tags.push(video(vt, key, if key { 60_000 } else { 9_000 }));
            v += 1;
        } else {
            tags.push(Tag {
                kind: TagKind::Audio,
                timestamp: at,
                data: Bytes::from([0xaf, 1, 0x21, 0x1a, 0x55].repeat(75)),
            });
            a += 1;
        }
    }
    let input: usize = tags.iter().map(|t| t.data.len()).sum();
    let mut seg = Segmenter::new(SegmenterConfig {
        target_ms: 2000,
        window: 6,
    });
    let start = Instant::now();
    let mut segments = 0;
    let mut output = 0usize;
    for t in &tags {
        if seg.push(t) == fleetcast_media::hls::segmenter::Pushed::SegmentDone {
            segments += 1;
            output += seg.window().last().map_or(0, |s| s.data.len());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let media_secs = f64::from(end_ms) / 1000.0;
    let mb = input as f64 / 1e6;
    println!(
        "{} tags, {:.1} MB in, {:.1} MB of TS in {segments} segments: {:.3} s, {:.0} MB/s, {:.0}x real time",
        tags.len(),
        mb,
        output as f64 / 1e6,
        secs,
        mb / secs,
        media_secs / secs
    );
}
