//! HLS cut on edges: two edges relaying one origin stream cut the same
//! segments, with the same names and the same bytes, as the origin and as
//! each other (deterministic cutting), so any request can go to any edge.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
mod edge_common;
#[path = "support/http_client.rs"]
mod http_client;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Server, http_get, publish};
use edge_common::{Reaped, start_edge, urls_of, wait_until};
use http_client::get;

/// The segment names of a playlist.
fn segments(server: &Server, path: &str) -> Vec<String> {
    let (status, body) = http_get(server.http, path);
    if status != 200 {
        return Vec::new();
    }
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
        .collect()
}

#[test]
fn edges_cut_the_origins_segments_byte_for_byte() {
    let origin = Server::start_with(&["hls: { segment_duration_secs: 1, window: 20 }"]);
    // Publishes longer than the test can wait; killed when the test ends.
    let _publisher = Reaped(publish(&origin.rtmp_url("live", "det"), 120));
    origin.wait_live("live", "det");
    let hls = ["hls: { segment_duration_secs: 1, window: 20 }"];
    let (e1, _c1) = start_edge(&urls_of(&origin), 5, &hls);
    // The second edge joins later, at another point of the stream.
    std::thread::sleep(Duration::from_millis(1500));
    let (e2, _c2) = start_edge(&urls_of(&origin), 5, &hls);
    let path = "/live/det/index.m3u8";
    // The first playlist request makes each edge pull and waits for a segment.
    for e in [&e1, &e2] {
        let (status, body) = http_get(e.http, path);
        assert_eq!(status, 200, "{body}");
    }
    // An edge's first segment starts where it joined; later ones align.
    let mut common = BTreeSet::new();
    wait_until(
        Duration::from_secs(40),
        "three segments common to all",
        || {
            let o: BTreeSet<String> = segments(&origin, path).into_iter().collect();
            let a: BTreeSet<String> = segments(&e1, path).into_iter().skip(1).collect();
            let b: BTreeSet<String> = segments(&e2, path).into_iter().skip(1).collect();
            common = o
                .intersection(&a)
                .cloned()
                .collect::<BTreeSet<_>>()
                .intersection(&b)
                .cloned()
                .collect();
            common.len() >= 3
        },
    );
    for name in &common {
        let seg = format!("/live/det/{name}");
        let r = get(origin.http, &seg);
        let (s0, want) = (r.status, r.body);
        assert_eq!(s0, 200, "{seg}");
        assert!(want.len() > 188, "{seg}: {} bytes", want.len());
        for (i, e) in [&e1, &e2].into_iter().enumerate() {
            let r = get(e.http, &seg);
            let (s, got) = (r.status, r.body);
            assert_eq!(s, 200, "edge {i} {seg}");
            assert!(got == want, "edge {i}: {seg} differs from the origin's");
        }
    }
}
