//! Draining on SIGTERM with the real binary: readiness fails at once while
//! liveness stays up, viewers keep playing through the drain period, then an
//! RTMP viewer is told the stream ended (so it reconnects elsewhere) and the
//! process exits within the grace period the operator gives edge pods.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, drain_until_unpublished, publish, rtmp_play_raw, wait_bounded};

/// The drain period of this test's server.
const DRAIN_SECS: u64 = 4;
/// What the operator adds to the drain period for an edge pod's
/// terminationGracePeriodSeconds (`build::edge::TERMINATION_MARGIN_SECS`).
const MARGIN_SECS: u64 = 25;

fn stats(server: &Server) -> serde_json::Value {
    let (status, body) = server.admin_get("/api/stats");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn sigterm_fails_readiness_drains_then_tells_viewers_and_exits() {
    let mut server = Server::start_with(&[&format!("drain: {{ period_secs: {DRAIN_SECS} }}")]);
    let mut publisher = publish(&server.rtmp_url("live", "show"), 120);
    server.wait_live("live", "show");
    let (mut socket, mut viewer) = rtmp_play_raw(&server, "live", "show", None);

    assert_eq!(server.get("/readyz").0, 200);
    assert_eq!(server.get("/healthz").0, 200);
    // /api/stats: the viewer, and a non-zero egress rate once a few samples exist.
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = stats(&server);
        if s["viewers"] == 1 && s["egress_bits_per_second"].as_u64().unwrap_or(0) > 0 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "stats never showed the viewer: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(s["draining"], false, "{s}");
    assert_eq!(s["window_secs"], 10, "{s}");

    let term = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Readiness fails while liveness stays up: Kubernetes takes the pod out of
    // its Services without restarting it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get("/readyz").0 != 503 {
        assert!(Instant::now() < deadline, "/readyz never turned 503");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        server.get("/healthz").0,
        200,
        "liveness must hold while draining"
    );
    assert_eq!(stats(&server)["draining"], true);

    // The viewer keeps getting video during the drain, then the status.
    let video = drain_until_unpublished(&mut socket, &mut viewer);
    assert!(
        video > 0,
        "the viewer got no video while the server drained"
    );
    assert!(
        term.elapsed() >= Duration::from_secs(DRAIN_SECS),
        "viewers were told to leave before the drain period ended"
    );
    let exit = wait_bounded(
        &mut server.child,
        Duration::from_secs(DRAIN_SECS + MARGIN_SECS),
        "fleetcast-media after SIGTERM",
    );
    assert!(exit.success(), "{exit:?}\n{}", server.log());
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn without_a_drain_period_sigterm_stops_at_once() {
    let mut server = Server::start();
    assert_eq!(server.get("/readyz").0, 200);
    let exit = server.terminate();
    assert!(exit.success(), "{exit:?}\n{}", server.log());
}
