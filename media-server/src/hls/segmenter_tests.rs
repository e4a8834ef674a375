use std::time::{Duration, SystemTime};

use mpeg2ts::pes::{PesPacketReader, ReadPesPacket};
use mpeg2ts::ts::{ReadTsPacket, TsPacketReader, TsPayload};

use super::*;
use crate::hls::playlist;
use crate::hls::testdata::{stream, video_frame};

fn feed(seg: &mut Segmenter, tags: &[Tag]) {
    for t in tags {
        seg.push(t);
    }
}

fn names(seg: &Segmenter) -> Vec<String> {
    seg.window().map(|s| s.name.clone()).collect()
}

fn config(window: usize) -> SegmenterConfig {
    SegmenterConfig {
        target_ms: 2000,
        window,
    }
}

#[test]
fn cuts_on_keyframes_at_target_slots() {
    let mut seg = Segmenter::new(config(10));
    seg.start_session(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    feed(&mut seg, &stream(0, 9000, 1000));
    seg.end_session();
    assert_eq!(
        names(&seg),
        [
            "seg-0.ts",
            "seg-2000.ts",
            "seg-4000.ts",
            "seg-6000.ts",
            "seg-8000.ts"
        ]
    );
    let durations: Vec<u64> = seg.window().map(|s| s.duration_ms).collect();
    assert_eq!(durations[..4], [2000, 2000, 2000, 2000]);
    // Last segment runs to the last frame plus one frame interval.
    assert!((990..=1034).contains(&durations[4]), "{durations:?}");
    assert_eq!(seg.target_duration_secs(), 2);
    let pdt = seg.window().nth(1).unwrap().program_date_time.unwrap();
    assert_eq!(
        pdt,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_002)
    );
}

#[test]
fn long_gops_make_longer_segments_and_raise_target_duration() {
    let mut seg = Segmenter::new(config(10));
    seg.start_session(SystemTime::UNIX_EPOCH);
    feed(&mut seg, &stream(0, 10_000, 3000));
    let durations: Vec<u64> = seg.window().map(|s| s.duration_ms).collect();
    assert_eq!(durations, [3000, 3000, 3000]);
    assert_eq!(seg.target_duration_secs(), 3);
}

#[test]
fn same_tags_give_identical_segments_and_names() {
    let tags = stream(5000, 20_000, 1000);
    let run = || {
        let mut seg = Segmenter::new(config(20));
        seg.start_session(SystemTime::UNIX_EPOCH);
        feed(&mut seg, &tags);
        seg.end_session();
        seg.window()
            .map(|s| (s.name.clone(), s.data.clone()))
            .collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a.len(), 8);
    assert_eq!(a, run());
}

#[test]
fn late_joiner_aligns_from_its_second_segment() {
    let tags = stream(0, 20_000, 1000);
    let mut origin = Segmenter::new(config(20));
    feed(&mut origin, &tags);
    // An edge that starts at the keyframe at 5 s (sequence headers first).
    let mut edge = Segmenter::new(config(20));
    let late: Vec<Tag> = tags[..3]
        .iter()
        .cloned()
        .chain(tags.iter().filter(|t| t.timestamp >= 5000).cloned())
        .collect();
    feed(&mut edge, &late);
    let edge_names = names(&edge);
    assert_eq!(edge_names[0], "seg-5000.ts");
    for s in edge.window().skip(1) {
        let o = origin.segment(&s.name).expect("same name on the origin");
        assert_eq!(o.data, s.data, "{}", s.name);
    }
}

#[test]
fn republish_continues_the_timeline_with_a_discontinuity() {
    let mut seg = Segmenter::new(config(10));
    seg.start_session(SystemTime::UNIX_EPOCH);
    feed(&mut seg, &stream(0, 5000, 1000));
    seg.end_session();
    assert!(playlist::render(&seg).contains("#EXT-X-ENDLIST"));
    // The new publisher starts its timestamps at 0 again.
    seg.start_session(SystemTime::UNIX_EPOCH);
    feed(&mut seg, &stream(0, 5000, 1000));
    let all: Vec<&Segment> = seg.window().collect();
    let seqs: Vec<u64> = all.iter().map(|s| s.sequence).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let starts: Vec<u64> = all.iter().map(|s| s.start_ms).collect();
    assert!(starts.windows(2).all(|w| w[1] > w[0]), "{starts:?}");
    let first_new = all
        .iter()
        .position(|s| s.discontinuity)
        .expect("a discontinuity");
    assert_eq!(
        all[first_new].start_ms,
        all[first_new - 1].start_ms + all[first_new - 1].duration_ms
    );
    assert_eq!(all.iter().filter(|s| s.discontinuity).count(), 1);
    let text = playlist::render(&seg);
    assert!(!text.contains("#EXT-X-ENDLIST"));
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
}

#[test]
fn sliding_window_advances_media_sequence() {
    let mut seg = Segmenter::new(config(3));
    feed(&mut seg, &stream(0, 20_000, 1000));
    let text = playlist::render(&seg);
    let (_, parsed) = m3u8_rs::parse_media_playlist(text.as_bytes()).unwrap();
    assert_eq!(parsed.segments.len(), 3);
    assert_eq!(parsed.media_sequence, 6);
    assert_eq!(parsed.target_duration, 2);
    assert_eq!(parsed.segments[0].uri, "seg-12000.ts");
    assert!(!parsed.end_list);
    // Segments just out of the window are still served for slow players.
    assert!(seg.segment("seg-10000.ts").is_some());
    assert!(seg.segment("seg-0.ts").is_none());
}

#[test]
fn discontinuity_sequence_counts_dropped_discontinuities() {
    let mut seg = Segmenter::new(config(2));
    for _ in 0..3 {
        seg.start_session(SystemTime::UNIX_EPOCH);
        feed(&mut seg, &stream(0, 4100, 1000));
        seg.end_session();
    }
    let text = playlist::render(&seg);
    let (_, parsed) = m3u8_rs::parse_media_playlist(text.as_bytes()).unwrap();
    // Window: the last two segments of the third session; two republishes happened before.
    assert_eq!(
        parsed.discontinuity_sequence + u64::from(parsed.segments[0].discontinuity),
        2
    );
    assert!(parsed.end_list);
}

#[test]
fn program_date_time_is_written() {
    let mut seg = Segmenter::new(config(5));
    seg.start_session(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    feed(&mut seg, &stream(0, 4100, 1000));
    let text = playlist::render(&seg);
    assert!(
        text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z"),
        "{text}"
    );
    assert!(
        text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z"),
        "{text}"
    );
}

#[test]
fn frames_before_the_first_keyframe_are_dropped() {
    let mut seg = Segmenter::new(config(5));
    let mut tags = stream(0, 0, 1000);
    tags.push(video_frame(10, false, 100));
    tags.extend(stream(40, 4100, 1000).into_iter().skip(3));
    feed(&mut seg, &tags);
    assert_eq!(names(&seg), ["seg-40.ts", "seg-2040.ts"]);
}

#[test]
fn segments_parse_as_transport_streams() {
    let mut seg = Segmenter::new(config(10));
    let tags = stream(0, 4000, 1000);
    feed(&mut seg, &tags);
    seg.end_session();
    let first = seg.window().next().unwrap();
    let mut reader = TsPacketReader::new(&first.data[..]);
    let mut pids = Vec::new();
    let mut counters = std::collections::HashMap::new();
    let mut last_pcr = None;
    while let Some(p) = reader.read_ts_packet().unwrap() {
        let pid = p.header.pid.as_u16();
        let cc = p.header.continuity_counter.as_u8();
        if let Some(prev) = counters.insert(pid, cc) {
            assert_eq!(cc, (prev + 1) % 16, "pid {pid:#x}");
        } else {
            assert_eq!(cc, 0);
        }
        if let Some(pcr) = p.adaptation_field.as_ref().and_then(|a| a.pcr.as_ref()) {
            last_pcr = Some(pcr.as_u64() / 300);
        }
        if let (Some(TsPayload::PesStart(pes)), Some(pcr)) = (&p.payload, last_pcr) {
            let dts = pes
                .header
                .dts
                .as_ref()
                .unwrap_or(pes.header.pts.as_ref().unwrap())
                .as_u64();
            assert!(dts >= pcr, "PES dts {dts} before the PCR {pcr}");
        }
        if let Some(TsPayload::Pmt(pmt)) = &p.payload {
            let types: Vec<u8> = pmt.es_info.iter().map(|e| e.stream_type as u8).collect();
            assert_eq!(types, [0x1b, 0x0f]);
            assert_eq!(pmt.pcr_pid.unwrap().as_u16(), 0x100);
        }
        pids.push(pid);
    }
    assert_eq!(pids[..2], [0, 0x1000]);
    let mut pes = PesPacketReader::new(TsPacketReader::new(&first.data[..]));
    let (mut video, mut audio) = (0, 0);
    while let Some(p) = pes.read_pes_packet().unwrap() {
        if p.header.stream_id.as_u8() == 0xe0 {
            assert_eq!(p.data[..6], [0, 0, 0, 1, 9, 0xf0]);
            assert_eq!(
                p.header.pts.unwrap().as_u64(),
                p.header
                    .dts
                    .map_or(p.header.pts.unwrap().as_u64(), |d| d.as_u64())
            );
            video += 1;
        } else {
            assert_eq!(p.data[..2], [0xff, 0xf1]);
            audio += 1;
        }
    }
    let want_video = tags
        .iter()
        .filter(|t| t.kind == TagKind::Video && t.timestamp < 2000 && !t.is_sequence_header())
        .count();
    let want_audio = tags
        .iter()
        .filter(|t| t.kind == TagKind::Audio && t.timestamp < 2000 && !t.is_sequence_header())
        .count();
    assert_eq!((video, audio), (want_video, want_audio));
}

#[test]
fn new_metadata_mid_session_starts_a_discontinuity() {
    // An edge resuming on another origin: the new session's metadata and
    // headers come just before its first keyframe, on a continued timeline.
    let mut seg = Segmenter::new(config(10));
    seg.start_session(SystemTime::UNIX_EPOCH);
    feed(&mut seg, &stream(0, 3000, 1000));
    let mut next = stream(3040, 7000, 1000);
    next[0] = crate::hls::testdata::other_script(3040);
    feed(&mut seg, &next);
    let segs: Vec<(String, bool)> = seg
        .window()
        .map(|s| (s.name.clone(), s.discontinuity))
        .collect();
    assert_eq!(segs[0], ("seg-0.ts".to_owned(), false));
    assert_eq!(segs[1], ("seg-2000.ts".to_owned(), false));
    assert_eq!(segs[2], ("seg-3040.ts".to_owned(), true));
    assert!(segs[3..].iter().all(|s| !s.1), "{segs:?}");
    assert!(playlist::render(&seg).contains("#EXT-X-DISCONTINUITY"));
}

#[test]
fn the_same_metadata_again_does_not_cut() {
    // Encoders that resend their metadata now and then: one timeline.
    let mut seg = Segmenter::new(config(10));
    seg.start_session(SystemTime::UNIX_EPOCH);
    feed(&mut seg, &stream(0, 3000, 1000));
    // `stream` starts with the same metadata (and headers) again.
    feed(&mut seg, &stream(3040, 7000, 1000));
    let segs: Vec<(String, bool)> = seg
        .window()
        .map(|s| (s.name.clone(), s.discontinuity))
        .collect();
    assert!(segs.iter().all(|s| !s.1), "{segs:?}");
    assert!(!playlist::render(&seg).contains("#EXT-X-DISCONTINUITY"));
    assert!(
        !segs.iter().any(|s| s.0 == "seg-3040.ts"),
        "cut at the metadata: {segs:?}"
    );
}
