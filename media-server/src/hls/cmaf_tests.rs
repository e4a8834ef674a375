use std::time::{Duration, SystemTime};

use super::*;
use crate::hls::testdata::stream;

pub(crate) fn fed(to_ms: u32) -> CmafSegmenter {
    fed_window(to_ms, 6)
}

pub(crate) fn fed_window(to_ms: u32, window: usize) -> CmafSegmenter {
    let mut s = CmafSegmenter::new(CmafConfig {
        target_ms: 2000,
        part_ms: 500,
        window,
    });
    s.start_session(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
    for t in stream(0, to_ms, 1000) {
        s.push(&t, u64::from(t.timestamp));
    }
    s
}

#[test]
fn segments_are_their_parts_concatenated() {
    let s = fed(7000);
    let names: Vec<&str> = s.window().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["seg-0.m4s", "seg-2000.m4s", "seg-4000.m4s"]);
    for seg in s.window() {
        let joined: Vec<u8> = seg.parts.iter().flat_map(|p| p.data.to_vec()).collect();
        assert_eq!(seg.data.to_vec(), joined);
        assert_eq!(seg.parts.len(), 4);
        assert_eq!(seg.parts[0].name, format!("part-{}.m4s", seg.start_ms));
        assert_eq!(s.file(&seg.name), Some(seg.data.clone()));
        assert_eq!(s.file(&seg.parts[1].name), Some(seg.parts[1].data.clone()));
    }
    assert!(s.init().is_some());
    // The open segment (6000..) has its first parts; the next is hinted.
    let (seq, _, _, parts) = s.open_segment().unwrap();
    assert_eq!(seq, 3);
    assert_eq!(parts[0].name, "part-6000.m4s");
    assert_eq!(
        s.next_part_name().unwrap(),
        format!("part-{}.m4s", parts.last().unwrap().start_ms + 500)
    );
}

#[test]
fn republish_continues_with_a_discontinuity_and_ends_the_list() {
    let mut s = fed(4500);
    s.end_session();
    assert!(s.ended());
    assert!(s.next_part_name().is_none());
    let last = s.window().last().unwrap();
    assert_eq!(last.name, "seg-4000.m4s");
    s.start_session(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000));
    for t in stream(0, 2500, 1000) {
        // The TS segmenter's continuous timeline continues after 4533 ms.
        s.push(&t, u64::from(t.timestamp) + 4533);
    }
    let after: Vec<_> = s.window().filter(|x| x.start_ms > 4000).collect();

    assert!(after[0].discontinuity, "{:?}", after[0].name);
    assert_eq!(after[0].start_ms, 4533);
    assert!(!s.ended());
}
