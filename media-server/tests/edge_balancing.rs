//! Balancing in an edge pool, with real processes and clients: in
//! `clustered` mode the edge that owns a stream (rendezvous hashing over
//! the pool) pulls it from the origin and the other edge pulls it from the
//! owner, so the origin serves the pool once; in `redirect` mode a
//! non-owner sends HTTP players to the owner with a 302 and serves RTMP
//! players through the owner.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
mod edge_common;
#[path = "support/http_client.rs"]
mod http_client;

use std::time::Duration;

use common::{Server, TempDir, publish, stream_of};
use edge_common::{
    Reaped, finish_player, free_addr, spawn_player, start_edge_on, urls_of, viewers, wait_until,
};
use fleetcast_media::edge::rendezvous::{Peer, owner};

const WAIT: Duration = Duration::from_secs(40);

/// Two edges of one pool in `mode`, each advertising its HTTP address;
/// returned as (owner of `key`, the other).
fn pool(origin: &Server, mode: &str, key: &str) -> ((Server, TempDir), (Server, TempDir)) {
    let addrs = [free_addr(), free_addr()];
    let peers = format!("    peers: [\"{}\", \"{}\"]", addrs[0], addrs[1]);
    let start = |me: &str| {
        start_edge_on(
            me,
            &urls_of(origin),
            3,
            &[
                "  balancing:",
                &format!("    mode: {mode}"),
                &peers,
                &format!("    advertise: \"{me}\""),
            ],
        )
    };
    let a = start(&addrs[0]);
    let b = start(&addrs[1]);
    let ps: Vec<Peer> = addrs.iter().map(Peer::new).collect();
    if owner(key, &ps).unwrap().addr == addrs[0] {
        (a, b)
    } else {
        (b, a)
    }
}

#[test]
fn clustered_edges_pull_each_stream_once_for_the_pool() {
    let origin = Server::start();
    let _publisher = Reaped(publish(&origin.rtmp_url("live", "pool"), 60));
    origin.wait_live("live", "pool");
    let ((owner_edge, _c1), (other, _c2)) = pool(&origin, "clustered", "live/pool");

    // Viewers on the non-owner first: it goes through the owner anyway.
    let players: Vec<_> = [
        other.rtmp_url("live", "pool"),
        other.flv_url("live", "pool"),
        owner_edge.rtmp_url("live", "pool"),
        owner_edge.flv_url("live", "pool"),
    ]
    .iter()
    .map(|u| spawn_player(u, 15))
    .collect();
    wait_until(WAIT, "two viewers on the non-owner", || {
        viewers(&other, "live", "pool") == 2
    });
    // The owner has its own two viewers and the other edge.
    wait_until(WAIT, "three viewers on the owner", || {
        viewers(&owner_edge, "live", "pool") == 3
    });
    assert_eq!(viewers(&origin, "live", "pool"), 1, "{}", origin.streams());
    let s = other.streams();
    assert_eq!(
        stream_of(&s, "live", "pool").unwrap()["upstream"],
        format!("rtmp://{}", owner_edge.rtmp),
        "{s}"
    );
    let s = owner_edge.streams();
    assert_eq!(
        stream_of(&s, "live", "pool").unwrap()["upstream"],
        format!("rtmp://{}", origin.rtmp),
        "{s}"
    );
    for (i, p) in players.into_iter().enumerate() {
        let played = finish_player(p, &format!("viewer {i}"));
        assert!(played.success, "viewer {i}: {}", played.stderr);
        assert!(
            played.count(0) >= 120,
            "viewer {i}: {} video packets",
            played.count(0)
        );
    }
}

#[test]
fn redirect_edges_send_http_players_to_the_owner() {
    let origin = Server::start();
    let _publisher = Reaped(publish(&origin.rtmp_url("live", "redir"), 60));
    origin.wait_live("live", "redir");
    let ((owner_edge, _c1), (other, _c2)) = pool(&origin, "redirect", "live/redir");

    for path in ["/live/redir.flv", "/live/redir/index.m3u8"] {
        let r = http_client::get(other.http, path);
        assert_eq!(r.status, 302, "{path}");
        assert_eq!(
            r.header("location"),
            Some(format!("http://{}{path}", owner_edge.http).as_str()),
            "{path}"
        );
    }
    // ffmpeg follows the redirect and plays from the owner.
    let played = finish_player(spawn_player(&other.flv_url("live", "redir"), 4), "HTTP-FLV");
    assert!(played.success, "{}", played.stderr);
    assert!(played.count(0) >= 60);
    assert!(stream_of(&other.streams(), "live", "redir").is_none());
    // RTMP players on a non-owner are served through the owner.
    let played = finish_player(spawn_player(&other.rtmp_url("live", "redir"), 4), "RTMP");
    assert!(played.success, "{}", played.stderr);
    let s = other.streams();
    assert_eq!(
        stream_of(&s, "live", "redir").unwrap()["upstream"],
        format!("rtmp://{}", owner_edge.rtmp),
        "{s}"
    );
    assert_eq!(viewers(&origin, "live", "redir"), 1, "{}", origin.streams());
}
