use super::*;
use crate::hls::cmaf::tests::{fed, fed_window};

fn lines(p: &str) -> Vec<&str> {
    p.lines().collect()
}

#[test]
fn header_tags_come_first_in_order() {
    let p = render(&fed(7000), false, "");
    let l = lines(&p);
    assert_eq!(l[0], "#EXTM3U");
    assert_eq!(l[1], "#EXT-X-VERSION:9");
    assert_eq!(l[2], "#EXT-X-TARGETDURATION:2");
    assert_eq!(
        l[3],
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,PART-HOLD-BACK=1.500"
    );
    assert_eq!(l[4], "#EXT-X-PART-INF:PART-TARGET=0.500");
    assert_eq!(l[5], "#EXT-X-MEDIA-SEQUENCE:0");
    assert_eq!(l[6], "#EXT-X-MAP:URI=\"init.mp4\"");
    assert!(l[7].starts_with("#EXT-X-PROGRAM-DATE-TIME:"), "{p}");
    // The preload hint is the last line and names the part after the last listed one.
    let last_part = l
        .iter()
        .rev()
        .find(|x| x.starts_with("#EXT-X-PART:"))
        .unwrap();
    let hint = l.last().unwrap();
    assert!(
        hint.starts_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-"),
        "{p}"
    );
    let ms = |s: &str| -> u64 {
        let i = s.find("part-").unwrap() + 5;
        s[i..].split('.').next().unwrap().parse().unwrap()
    };
    let dur: f64 = last_part
        .split("DURATION=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let dur_ms = (dur * 1000.0).round() as u64;
    assert_eq!(ms(hint), ms(last_part) + dur_ms);
    assert!(!p.contains("ENDLIST"));
}

#[test]
fn parts_fit_the_part_target_and_keyframes_are_independent() {
    let p = render(&fed(7000), false, "");
    let mut n = 0;
    for l in p.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
        n += 1;
        let d: f64 = l[21..].split(',').next().unwrap().parse().unwrap();
        assert!(d <= 0.5, "{l}");
        let ms: u64 = l
            .split("part-")
            .nth(1)
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            l.ends_with(",INDEPENDENT=YES"),
            ms.is_multiple_of(1000),
            "{l}"
        );
    }
    assert!(n >= 12, "{p}");
    // Each segment's parts come before its EXTINF, and add up to it.
    let seg = p.find("seg-2000.m4s").unwrap();
    let before = &p[..seg];
    let parts_of_seg: Vec<_> = before
        .lines()
        .rev()
        .skip(1)
        .take_while(|l| l.starts_with("#EXT-X-PART:"))
        .collect();
    assert_eq!(parts_of_seg.len(), 4, "{p}");
}

#[test]
fn parts_are_listed_for_recent_segments_only() {
    let s = fed(13_000);
    let p = render(&s, false, "");
    let first_seg = s.window().next().unwrap();
    assert!(
        !p.contains(&format!("part-{}.m4s", first_seg.start_ms)),
        "{p}"
    );
    let last_seg = s.window().last().unwrap();
    assert!(
        p.contains(&format!("part-{}.m4s", last_seg.start_ms)),
        "{p}"
    );
}

#[test]
fn delta_update_skips_old_segments() {
    let s = fed_window(21_900, 10);
    let full = render(&s, false, "");
    let delta = render(&s, true, "");
    let skipped: usize = delta
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(skipped >= 1, "{delta}");
    let count = |p: &str| p.lines().filter(|l| l.starts_with("seg-")).count();
    assert_eq!(count(&full), count(&delta) + skipped);
    // What remains covers at least CAN-SKIP-UNTIL (12 s).
    assert!(!delta.contains("seg-0.m4s"));
}

#[test]
fn blocking_reload_semantics() {
    let s = fed(7000); // segments 0..=2 done, 3 open with some parts
    let (open, _, _, parts) = s.open_segment().unwrap();
    let n = parts.len() as u64;
    assert_eq!(blocking(&s, None, None), Blocking::Ready);
    assert_eq!(blocking(&s, None, Some(0)), Blocking::BadRequest);
    assert_eq!(blocking(&s, Some(2), None), Blocking::Ready);
    assert_eq!(blocking(&s, Some(open), None), Blocking::Wait);
    assert_eq!(blocking(&s, Some(open), Some(n - 1)), Blocking::Ready);
    assert_eq!(blocking(&s, Some(open), Some(n)), Blocking::Wait);
    assert_eq!(blocking(&s, Some(open), Some(n + 2)), Blocking::Wait);
    assert_eq!(blocking(&s, Some(open), Some(n + 3)), Blocking::BadRequest);
    assert_eq!(blocking(&s, Some(open + 1), Some(0)), Blocking::Wait);
    assert_eq!(blocking(&s, Some(open + 2), None), Blocking::Wait);
    assert_eq!(blocking(&s, Some(open + 3), None), Blocking::BadRequest);
}

#[test]
fn ended_stream_has_endlist_and_no_hint() {
    let mut s = fed(5000);
    s.end_session();
    let p = render(&s, false, "");
    assert!(p.ends_with("#EXT-X-ENDLIST\n"), "{p}");
    assert!(!p.contains("PRELOAD-HINT"));
    assert_eq!(blocking(&s, Some(99), None), Blocking::Ready);
}

#[test]
fn the_request_query_is_carried_to_every_uri() {
    let p = render(&fed(5000), false, "token=abc");
    let uris: Vec<&str> = p
        .lines()
        .filter_map(|l| {
            if l.starts_with('#') {
                l.split("URI=\"").nth(1)?.split('"').next()
            } else {
                Some(l)
            }
        })
        .collect();
    assert!(uris.len() > 10, "{p}");
    assert!(uris.iter().all(|u| u.ends_with("?token=abc")), "{p}");
}
