//! Helpers of the edge tests: start edges in front of upstreams, play a
//! stream for a while with a real client and count what arrived.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{Server, TempDir, output_bounded, require, stream_of};

/// Starts an edge pulling from `upstreams` (URLs), idle timeout `idle` s,
/// with extra yaml lines under `edge:` (indented by the caller).
pub fn start_edge(upstreams: &[String], idle: u64, extra_edge: &[&str]) -> (Server, TempDir) {
    start_edge_on(
        &format!("{}:0", super::common::next_loopback()),
        upstreams,
        idle,
        extra_edge,
    )
}

/// Like [`start_edge`] with the HTTP listener on `http`.
pub fn start_edge_on(
    http: &str,
    upstreams: &[String],
    idle: u64,
    extra_edge: &[&str],
) -> (Server, TempDir) {
    let cache = TempDir::new("edge-cache");
    let list = upstreams
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut lines = vec![
        "role: edge".to_owned(),
        "edge:".to_owned(),
        format!("  upstreams: [{list}]"),
        format!("  idle_timeout_secs: {idle}"),
        format!("  upstream_admin_port: {}", super::common::admin_port()),
        format!("  cache: {{ dir: \"{}\" }}", cache.0.display()),
    ];
    lines.extend(extra_edge.iter().map(|l| (*l).to_owned()));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    (Server::start_on(http, &refs), cache)
}

/// Both upstream URLs of a Fleetcast server.
pub fn urls_of(s: &Server) -> Vec<String> {
    vec![format!("rtmp://{}", s.rtmp), format!("http://{}", s.http)]
}

/// ffmpeg copying `url` for `secs` seconds into a per-packet CRC list on
/// stdout (one line per packet: stream index, dts, pts, ...).
pub fn spawn_player(url: &str, secs: u32) -> Child {
    require("ffmpeg");
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(["-rw_timeout", "30000000", "-i", url])
        .args(["-t", &secs.to_string(), "-map", "0", "-c", "copy"])
        .args(["-f", "framecrc", "pipe:1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ffmpeg")
}

/// What a player received: (stream index, dts in the stream's time base) per packet.
#[derive(Debug, Default)]
pub struct Played {
    pub packets: Vec<(u32, i64)>,
    pub stderr: String,
    pub success: bool,
}

impl Played {
    /// Packets of stream `index` (ffmpeg orders video first for FLV from our servers).
    pub fn count(&self, index: u32) -> usize {
        self.packets.iter().filter(|p| p.0 == index).count()
    }

    /// Every packet's count.
    pub fn total(&self) -> usize {
        self.packets.len()
    }
}

/// Waits (bounded) for a [`spawn_player`] and parses its output.
pub fn finish_player(child: Child, what: &str) -> Played {
    let out = output_bounded(child, Duration::from_mins(2), what);
    let text = String::from_utf8_lossy(&out.stdout);
    let packets = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(',').map(str::trim);
            let idx = f.next()?.parse().ok()?;
            let dts = f.next()?.parse().ok()?;
            Some((idx, dts))
        })
        .collect();
    Played {
        packets,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        success: out.status.success(),
    }
}

/// The `viewers` of app/name in a server's `/api/streams` (0 when absent).
pub fn viewers(s: &Server, app: &str, name: &str) -> u64 {
    stream_of(&s.streams(), app, name).map_or(0, |e| e["viewers"].as_u64().unwrap_or(0))
}

/// Polls `cond` every 100 ms until true; fails with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed (and reaped) when dropped, also on panic.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A metric of a server's `/metrics`, as an integer.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn metric_u64(s: &Server, name: &str) -> u64 {
    let (status, body) = s.admin_get("/metrics");
    assert_eq!(status, 200);
    super::common::metric(&super::common::parse_metrics(&body), name) as u64
}

/// A loopback address of its own with a port free now (for servers that
/// must know their address before they start).
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind((super::common::next_loopback(), 0)).unwrap();
    l.local_addr().unwrap().to_string()
}
