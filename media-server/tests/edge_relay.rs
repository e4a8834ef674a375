//! Live relay on an edge, with real processes and clients on loopback: the
//! first viewer makes the edge pull the stream from its origin once, every
//! later viewer shares that pull, it closes when idle, tiers of edges
//! chain, and a stream no upstream has is refused clearly.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
mod edge_common;

use std::time::Duration;

use common::{Server, http_get, publish, stream_of};
use edge_common::{
    Reaped, finish_player, metric_u64, spawn_player, start_edge, urls_of, viewers, wait_until,
};

const WAIT: Duration = Duration::from_secs(40);

#[test]
fn twenty_viewers_on_an_edge_are_one_viewer_of_the_origin_and_the_pull_closes_when_idle() {
    let origin = Server::start();
    let _publisher = Reaped(publish(&origin.rtmp_url("live", "cam"), 60));
    origin.wait_live("live", "cam");
    let (edge, _cache) = start_edge(&urls_of(&origin), 2, &[]);

    let mut players = Vec::new();
    for i in 0..20 {
        let url = if i % 2 == 0 {
            edge.rtmp_url("live", "cam")
        } else {
            edge.flv_url("live", "cam")
        };
        players.push(spawn_player(&url, 20));
    }
    wait_until(WAIT, "20 viewers on the edge", || {
        viewers(&edge, "live", "cam") == 20
    });
    // However many viewers the edge has, the origin serves it once.
    assert_eq!(viewers(&origin, "live", "cam"), 1, "{}", origin.streams());
    let streams = edge.streams();
    assert_eq!(streams["role"], "edge");
    let entry = stream_of(&streams, "live", "cam").unwrap();
    assert_eq!(
        entry["upstream"],
        format!("rtmp://{}", origin.rtmp),
        "{streams}"
    );
    assert_eq!(entry["viewers_by_protocol"]["rtmp"], 10, "{streams}");
    assert_eq!(entry["viewers_by_protocol"]["flv"], 10, "{streams}");
    assert!(
        stream_of(&origin.streams(), "live", "cam")
            .unwrap()
            .get("upstream")
            .is_none()
    );
    assert_eq!(metric_u64(&edge, "fleetcast_edge_pulls_opened_total"), 1);
    assert_eq!(metric_u64(&edge, "fleetcast_edge_pulls_active"), 1);

    for (i, p) in players.into_iter().enumerate() {
        let played = finish_player(p, &format!("viewer {i}"));
        assert!(played.success, "viewer {i}: {}", played.stderr);
        // 20 s of 30 fps video, from a keyframe on.
        assert!(
            played.count(0) >= 150,
            "viewer {i} got {} video packets",
            played.count(0)
        );
        assert!(played.count(1) > 0, "viewer {i} got no audio");
    }

    // No viewers: the pull closes after the idle timeout, and the origin
    // loses its viewer.
    wait_until(WAIT, "the edge to close its idle pull", || {
        stream_of(&edge.streams(), "live", "cam").is_none()
    });
    wait_until(WAIT, "the origin to lose the edge as a viewer", || {
        viewers(&origin, "live", "cam") == 0
    });
    assert_eq!(metric_u64(&edge, "fleetcast_edge_pulls_active"), 0);
    edge.expect_log("relay closed: no viewers");

    // A viewer after that opens a new pull.
    let played = finish_player(spawn_player(&edge.flv_url("live", "cam"), 3), "late viewer");
    assert!(played.count(0) > 30, "{played:?}");
    assert_eq!(metric_u64(&edge, "fleetcast_edge_pulls_opened_total"), 2);
}

#[test]
fn a_stream_no_upstream_has_is_refused_over_rtmp_and_http() {
    let origin = Server::start();
    let (edge, _cache) = start_edge(&urls_of(&origin), 2, &[]);
    let (status, body) = http_get(edge.http, "/live/nobody.flv");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no upstream"), "{body}");
    let (status, _) = http_get(edge.http, "/live/nobody/index.m3u8");
    assert_eq!(status, 404);
    // An application the edge does not serve pulls nothing.
    let (status, _) = http_get(edge.http, "/other/x.flv");
    assert_eq!(status, 404);
    let played = finish_player(spawn_player(&edge.rtmp_url("live", "nobody"), 3), "player");
    assert!(!played.success, "playing a missing stream succeeded");
    assert_eq!(played.total(), 0);
    edge.expect_log("stream not found upstream");
    // Repeated misses within a short while are answered from the edge's
    // negative cache without asking the upstreams again, so at least the
    // first counts (how many more depends on the time between requests).
    assert!(metric_u64(&edge, "fleetcast_edge_pulls_failed_total") >= 1);
}

#[test]
fn edges_chain_in_tiers() {
    let origin = Server::start();
    let _publisher = Reaped(publish(&origin.rtmp_url("live", "tier"), 60));
    origin.wait_live("live", "tier");
    let (parent, _c1) = start_edge(&urls_of(&origin), 2, &[]);
    let (child, _c2) = start_edge(&urls_of(&parent), 2, &[]);

    let played = finish_player(
        spawn_player(&child.rtmp_url("live", "tier"), 6),
        "viewer of the second tier",
    );
    assert!(played.success, "{}", played.stderr);
    assert!(played.count(0) >= 90, "{} video packets", played.count(0));

    // The pulls are still open (idle timeout): each tier names its upstream.
    let c = child.streams();
    assert_eq!(
        stream_of(&c, "live", "tier").unwrap()["upstream"],
        format!("rtmp://{}", parent.rtmp),
        "{c}"
    );
    let p = parent.streams();
    assert_eq!(
        stream_of(&p, "live", "tier").unwrap()["upstream"],
        format!("rtmp://{}", origin.rtmp),
        "{p}"
    );
    assert_eq!(viewers(&origin, "live", "tier"), 1);
}

#[test]
fn rtmp_players_are_told_when_a_relayed_stream_is_gone_for_good() {
    use fleetcast_media::rtmp::ClientEvent;
    use std::io::{Read, Write};
    let origin = Server::start();
    let mut publisher = Reaped(publish(&origin.rtmp_url("live", "short"), 60));
    origin.wait_live("live", "short");
    let (edge, _cache) = start_edge(&urls_of(&origin), 30, &[]);
    // A raw player (ffmpeg would hang up by itself on UnpublishNotify).
    let (mut s, mut c) = common::rtmp_play_raw(&edge, "live", "short", None);
    wait_until(WAIT, "the player on the edge", || {
        viewers(&edge, "live", "short") == 1
    });
    // The publisher stops and comes back nowhere.
    let _ = publisher.0.kill();
    let _ = publisher.0.wait();
    // After the failover window the edge ends the stream, looks once more
    // for its player, finds nothing and says so, then closes.
    // (Media may or may not have reached it before the publisher died.)
    common::drain_until_unpublished(&mut s, &mut c);
    let mut buf = vec![0u8; 1 << 16];
    let mut refused = false;
    while !refused {
        if let Some(out) = c.take_output() {
            s.write_all(&out).unwrap();
        }
        let n = s.read(&mut buf).expect("reading the player");
        assert!(n > 0, "closed without saying the stream is gone");
        for ev in c.feed(&buf[..n]).unwrap() {
            if let ClientEvent::Status { code, .. } = ev {
                refused |= code == "NetStream.Play.StreamNotFound";
            }
        }
    }
    assert!(common::closed_by_server(&mut s));
    edge.expect_log("relay lost its upstream");
}
