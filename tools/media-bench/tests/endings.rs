//! How media-bench sessions end, against a real Fleetcast origin (in this
//! process, on its own runtime, on loopback) fed by a real ffmpeg publisher:
//! viewers of an origin that shuts down (what SIGTERM does once its drain
//! period is over) are told to leave before the connection closes; viewers of
//! an origin that dies at once (its runtime dropped: every socket closed with
//! no word, as when the process is killed) are cut; with `--reconnect`,
//! viewers told the publisher left connect again and play the republished
//! stream. ffmpeg missing fails the test with the reason. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use fleetcast_media::config::Config;
use fleetcast_media::server::{AppState, bind, run};
use tokio_util::sync::CancellationToken;

/// Bound of every wait in these tests (none is a timing threshold).
const PATIENCE: Duration = Duration::from_mins(1);

fn require_ffmpeg() {
    let found = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "ffmpeg is not installed: run `apt-get install ffmpeg` (make deps does it)"
    );
}

/// The default config with every listener on a free loopback port (whatever
/// listeners the server has) and `data` as its data directory.
fn loopback_config(data: &Path) -> Config {
    let mut v = serde_json::to_value(Config::default()).unwrap();
    for section in v.as_object_mut().unwrap().values_mut() {
        if let Some(listen) = section.get_mut("listen") {
            *listen = serde_json::json!("127.0.0.1:0");
        }
    }
    v["data_dir"] = serde_json::json!(data);
    serde_json::from_value(v).unwrap()
}

/// A Fleetcast origin on a runtime of its own, so it can also die at once.
struct Origin {
    rtmp: SocketAddr,
    http: SocketAddr,
    shutdown: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    data: PathBuf,
}

impl Origin {
    fn start(tag: &str) -> Self {
        let data =
            std::env::temp_dir().join(format!("media-bench-endings-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&data).unwrap();
        let config = loopback_config(&data);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let (rtmp, http, server) = runtime.block_on(async move {
            let listeners = bind(&config).await.unwrap();
            let rtmp = listeners.rtmp.local_addr().unwrap();
            let http = listeners.http.local_addr().unwrap();
            let server = tokio::spawn(run(listeners, AppState::new(config, token)));
            (rtmp, http, server)
        });
        Self {
            rtmp,
            http,
            shutdown,
            runtime: Some(runtime),
            server: Some(server),
            data,
        }
    }

    fn rtmp_url(&self) -> String {
        format!("rtmp://{}/live/end", self.rtmp)
    }

    fn flv_url(&self) -> String {
        format!("http://{}/live/end.flv", self.http)
    }

    /// The normal shutdown, waited for (bounded).
    fn shut_down(&mut self) {
        self.shutdown.cancel();
        let (Some(rt), Some(server)) = (self.runtime.as_ref(), self.server.take()) else {
            return;
        };
        rt.block_on(async { tokio::time::timeout(PATIENCE, server).await })
            .expect("origin did not shut down")
            .unwrap()
            .unwrap();
    }

    /// Every task dropped, every socket closed, no shutdown code run.
    fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// A real-time ffmpeg test pattern published to `url` (killed on drop).
struct Publisher(Child);

impl Publisher {
    fn start(url: &str) -> Self {
        require_ffmpeg();
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", "120", "-c:v", "libx264", "-preset", "ultrafast"])
            .args([
                "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv",
            ])
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `media-bench first-frame`: returns once the stream plays.
fn wait_playable(url: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_media-bench"))
        .args(["first-frame", "--url", url, "--timeout", "60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{url} never played: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `media-bench play` in the background, its progress lines read as they come.
struct Bench {
    child: Option<Child>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Bench {
    fn start(url: &str, viewers: usize, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_media-bench"))
            .args(["play", "--url", url, "--viewers", &viewers.to_string()])
            .args([
                "--duration",
                "300",
                "--progress",
                "0.2",
                "--json",
                "--per-viewer",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            child: Some(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a progress line satisfying `pred`.
    fn wait_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = pred(&line);
                    self.seen.push(line);
                    if done {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("media-bench never showed {what}:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// SIGTERM: the run ends now and prints its report.
    fn stop(&mut self) {
        let pid = self.child.as_ref().unwrap().id();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the run to end and returns its JSON report.
    fn report(&mut self) -> serde_json::Value {
        let child = self.child.take().unwrap();
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let Ok(out) = rx.recv_timeout(PATIENCE) else {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("media-bench did not finish: {}", self.seen.join("\n"));
        };
        let out = out.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "media-bench failed: {stdout}\n{}",
            self.seen.join("\n")
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad report ({e}): {stdout}"))
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The number after `word ` in a progress line.
fn count_after(line: &str, word: &str) -> Option<u64> {
    let at = line.find(&format!("{word} "))? + word.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn assert_played(report: &serde_json::Value, viewers: u64) {
    assert_eq!(report["viewers"], viewers, "{report:#}");
    assert!(
        report["video_frames"]["min"].as_f64().unwrap() > 0.0,
        "a viewer got no video: {report:#}"
    );
}

/// RTMP and HTTP-FLV viewers on an origin; `end` ends the origin; returns
/// both reports once every viewer's session ended.
fn viewers_until(
    tag: &str,
    end: impl FnOnce(&mut Origin),
) -> (serde_json::Value, serde_json::Value) {
    let mut origin = Origin::start(tag);
    let _publisher = Publisher::start(&origin.rtmp_url());
    wait_playable(&origin.rtmp_url());
    let mut rtmp = Bench::start(&origin.rtmp_url(), 3, &[]);
    let mut flv = Bench::start(&origin.flv_url(), 3, &[]);
    for bench in [&mut rtmp, &mut flv] {
        bench.wait_line("all viewers playing", |l| {
            l.contains("(3 playing)") && count_after(l, "Mbit/s,").unwrap_or(0) > 0
        });
    }
    end(&mut origin);
    // No viewer is left playing, so both runs end by themselves.
    (rtmp.report(), flv.report())
}

#[test]
fn viewers_of_a_server_shutting_down_are_told_to_leave() {
    let (rtmp, flv) = viewers_until("told", Origin::shut_down);
    assert_played(&rtmp, 3);
    assert_played(&flv, 3);
    for report in [&rtmp, &flv] {
        assert_eq!(report["ended_told"], 3, "{report:#}");
        assert_eq!(report["ended_cut"], 0, "{report:#}");
        assert_eq!(report["still_playing"], 0, "{report:#}");
        assert_eq!(report["reconnects"], 0, "{report:#}");
    }
    assert_eq!(
        rtmp["told_codes"],
        serde_json::json!({"NetStream.Play.UnpublishNotify": 3}),
        "{rtmp:#}"
    );
    assert_eq!(
        flv["told_codes"],
        serde_json::json!({"end of chunked response": 3}),
        "{flv:#}"
    );
    assert_eq!(rtmp["failures"]["told to leave"], 3, "{rtmp:#}");
}

#[test]
fn viewers_of_a_server_that_dies_are_cut() {
    let (rtmp, flv) = viewers_until("cut", Origin::kill);
    assert_played(&rtmp, 3);
    assert_played(&flv, 3);
    for report in [&rtmp, &flv] {
        assert_eq!(report["ended_cut"], 3, "{report:#}");
        assert_eq!(report["ended_told"], 0, "{report:#}");
        assert_eq!(report["still_playing"], 0, "{report:#}");
        let cut: u64 = report["cut_reasons"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(cut, 3, "{report:#}");
    }
}

#[test]
fn reconnect_after_unpublish_plays_the_republished_stream() {
    let origin = Origin::start("reconnect");
    let url = origin.rtmp_url();
    let mut first = Publisher::start(&url);
    wait_playable(&url);
    let mut rtmp = Bench::start(&url, 2, &["--reconnect", "--reconnect-delay-ms", "200"]);
    // HTTP-FLV viewers reconnecting before the publisher is back are refused
    // (404) and try again, within a bound far above what the test needs.
    let mut flv = Bench::start(
        &origin.flv_url(),
        2,
        &[
            "--reconnect",
            "--reconnect-delay-ms",
            "200",
            "--max-reconnects",
            "300",
        ],
    );
    for bench in [&mut rtmp, &mut flv] {
        bench.wait_line("all viewers playing", |l| {
            l.contains("(2 playing)") && count_after(l, "Mbit/s,").unwrap_or(0) > 0
        });
    }

    // The publisher leaves: viewers are told (UnpublishNotify, the end of
    // the HTTP-FLV response), leave and connect again; the origin accepts
    // the RTMP plays and waits for a publisher.
    first.stop();
    for bench in [&mut rtmp, &mut flv] {
        bench.wait_line("both viewers reconnecting", |l| {
            count_after(l, "reconnects").unwrap_or(0) >= 2
        });
    }
    let _second = Publisher::start(&url);
    for bench in [&mut rtmp, &mut flv] {
        bench.wait_line("both reconnects playing", |l| {
            count_after(l, "ok") == Some(2)
        });
        bench.stop();
    }
    let (rtmp, flv) = (rtmp.report(), flv.report());

    for report in [&rtmp, &flv] {
        assert_played(report, 2);
        assert_eq!(report["reconnected_ok"], 2, "{report:#}");
        assert_eq!(report["reconnect_unfinished"], 0, "{report:#}");
        assert_eq!(report["ended_told"], 2, "{report:#}");
        assert_eq!(report["ended_cut"], 0, "{report:#}");
        assert_eq!(report["moved_ok"], 2, "{report:#}");
        assert_eq!(report["moved_lost"], 0, "{report:#}");
        assert_eq!(report["moved_unfinished"], 0, "{report:#}");
        assert_eq!(report["still_playing"], 2, "{report:#}");
        assert_eq!(report["ok"], 2, "{report:#}");
        for v in report["per_viewer"].as_array().unwrap() {
            let sessions = v["sessions"].as_array().unwrap();
            assert_eq!(sessions[0]["end"], "told", "{v:#}");
            let last = sessions.last().unwrap();
            assert_eq!(last["end"], "still_playing", "{v:#}");
            assert_eq!(last["played"], true, "{v:#}");
        }
    }
    // RTMP: the origin accepted each reconnect at once.
    assert_eq!(rtmp["reconnects"], 2, "{rtmp:#}");
    assert_eq!(rtmp["reconnect_failed"], 0, "{rtmp:#}");
    assert_eq!(
        rtmp["told_codes"],
        serde_json::json!({"NetStream.Play.UnpublishNotify": 2}),
        "{rtmp:#}"
    );
    // HTTP-FLV: refused reconnects are failures, the move still succeeded.
    assert_eq!(
        flv["reconnects"].as_u64().unwrap(),
        2 + flv["reconnect_failed"].as_u64().unwrap(),
        "{flv:#}"
    );
    assert_eq!(
        flv["told_codes"],
        serde_json::json!({"end of chunked response": 2}),
        "{flv:#}"
    );
}

#[test]
fn a_stream_that_stops_flowing_without_a_word_is_cut_with_stall() {
    let origin = Origin::start("stall");
    let url = origin.rtmp_url();
    let mut publisher = Publisher::start(&url);
    wait_playable(&url);
    let mut bench = Bench::start(&url, 2, &["--stall", "1"]);
    bench.wait_line("all viewers playing", |l| {
        l.contains("(2 playing)") && count_after(l, "Mbit/s,").unwrap_or(0) > 0
    });
    // The publisher freezes: its connection stays open, nothing flows, the
    // server says nothing.
    let pid = publisher.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let report = bench.report();
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    publisher.stop();

    assert_played(&report, 2);
    assert_eq!(report["ended_cut"], 2, "{report:#}");
    assert_eq!(report["cut_reasons"]["stalled"], 2, "{report:#}");
    assert_eq!(report["ended_told"], 0, "{report:#}");
    assert_eq!(report["still_playing"], 0, "{report:#}");
}
