//! Origin failover through an edge, with real processes and clients: the
//! origin holding a stream is killed, the publisher moves to a second
//! origin, and one viewer's single ffmpeg session on the edge (RTMP and
//! HTTP-FLV) keeps receiving frames from the second origin, timestamps
//! monotonic; the edge's HLS playlist marks a discontinuity.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
mod edge_common;

use std::time::Duration;

use common::{Server, http_get, publish, publish_args, stream_of};
use edge_common::{
    Reaped, finish_player, metric_u64, spawn_player, start_edge, viewers, wait_until,
};

const WAIT: Duration = Duration::from_secs(40);
/// Media seconds each viewer asks for: enough that the session still runs
/// well after the switch even when the waits before it are slow.
const VIEW_SECS: u32 = 45;
/// Frame interval of origin A's publisher (30 fps) in FLV milliseconds.
const A_FRAME_MS: [i64; 2] = [33, 34];
/// Origin B's publisher sends 25 fps, so B's frames are told apart from A's
/// by their interval in the viewer's own media.
const B_FRAME_MS: i64 = 40;
/// Consecutive frames (about two seconds) that must come from each origin.
const FROM_EACH: usize = 50;

#[test]
fn viewers_keep_their_sessions_when_the_publisher_moves_to_another_origin() {
    let mut origin_a = Server::start();
    let origin_b = Server::start();
    let publisher_a = Reaped(publish(&origin_a.rtmp_url("live", "fo"), 120));
    origin_a.wait_live("live", "fo");
    let mut upstreams = Vec::new();
    for s in [&origin_a, &origin_b] {
        upstreams.push(format!("rtmp://{}", s.rtmp));
        upstreams.push(format!("http://{}", s.http));
    }
    let (edge, _cache) = start_edge(&upstreams, 5, &[]);
    let rtmp = spawn_player(&edge.rtmp_url("live", "fo"), VIEW_SECS);
    let flv = spawn_player(&edge.flv_url("live", "fo"), VIEW_SECS);
    wait_until(WAIT, "two viewers on the edge", || {
        viewers(&edge, "live", "fo") == 2
    });
    wait_until(WAIT, "a first HLS segment on the edge", || {
        http_get(edge.http, "/live/fo/index.m3u8").0 == 200
    });
    std::thread::sleep(Duration::from_secs(3));

    // Origin A dies with its publisher; the publisher comes back on B.
    let _ = origin_a.child.kill();
    let _ = origin_a.child.wait();
    drop(publisher_a);
    let _publisher_b = Reaped(publish_args(
        &origin_b.rtmp_url("live", "fo"),
        120,
        &["-r", "25"],
    ));
    origin_b.wait_live("live", "fo");
    wait_until(WAIT, "the edge to pull from origin B", || {
        stream_of(&edge.streams(), "live", "fo")
            .is_some_and(|s| s["upstream"] == format!("rtmp://{}", origin_b.rtmp))
    });
    assert_eq!(viewers(&origin_b, "live", "fo"), 1);
    assert_eq!(metric_u64(&edge, "fleetcast_edge_failovers_total"), 1);
    // HLS cut on the edge goes on, with a discontinuity at the switch.
    wait_until(WAIT, "a discontinuity in the edge's HLS playlist", || {
        let (status, playlist) = http_get(edge.http, "/live/fo/index.m3u8");
        status == 200 && playlist.lines().any(|l| l.trim() == "#EXT-X-DISCONTINUITY")
    });

    // Each viewer's one session holds a run of A's 30 fps frames, then a run
    // of B's 25 fps frames: B's media came through the same session.
    for (what, child) in [("RTMP", rtmp), ("HTTP-FLV", flv)] {
        let played = finish_player(child, what);
        assert!(played.success, "{what}: {}", played.stderr);
        let video: Vec<i64> = played
            .packets
            .iter()
            .filter(|p| p.0 == 0)
            .map(|p| p.1)
            .collect();
        assert!(
            video.windows(2).all(|w| w[0] <= w[1]),
            "{what}: video timestamps went back"
        );
        let steps: Vec<i64> = video.windows(2).map(|w| w[1] - w[0]).collect();
        let a_run = longest_run(&steps, |d| A_FRAME_MS.contains(&d));
        let b_run = longest_run(&steps, |d| d == B_FRAME_MS);
        assert!(
            a_run.is_some_and(|(_, len)| len >= FROM_EACH),
            "{what}: no run of {FROM_EACH} frames from origin A: {a_run:?}"
        );
        assert!(
            b_run.is_some_and(|(_, len)| len >= FROM_EACH),
            "{what}: no run of {FROM_EACH} frames from origin B: {b_run:?}"
        );
        assert!(
            a_run.unwrap().0 < b_run.unwrap().0,
            "{what}: origin B's frames came before origin A's"
        );
        let span_ms = video.last().unwrap() - video.first().unwrap();
        assert!(
            span_ms >= i64::from(VIEW_SECS - 2) * 1000,
            "{what}: {span_ms} ms of video in one session"
        );
    }
}

/// The start and length of the longest run of `steps` matching `hit`.
fn longest_run(steps: &[i64], hit: impl Fn(i64) -> bool) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    let mut start = 0;
    for (i, &d) in steps.iter().enumerate() {
        if !hit(d) {
            start = i + 1;
            continue;
        }
        let len = i + 1 - start;
        if best.is_none_or(|(_, l)| len > l) {
            best = Some((start, len));
        }
    }
    best
}
