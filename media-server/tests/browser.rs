//! The status page and the player in a real browser: Debian's Chromium,
//! headless, against a real `fleetcast-media` with ffmpeg publishing a test
//! pattern. Chromium is driven from its command line: `--dump-dom` renders
//! `/` and prints the DOM; a watch page runs with `--enable-logging=stderr`
//! and the player's once-a-second console line
//! (`fleetcast-player: t=... frames=... latency_ms=... errors=...`) is read
//! from Chromium's stderr. That line carries all the state the test needs,
//! so no `DevTools` client is involved. A missing Chromium fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
#[path = "edge_common/mod.rs"]
mod edge_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, TempDir, output_bounded, publish};
use edge_common::{start_edge, urls_of};

/// How long a player may take to show what the test waits for.
const PLAY_LIMIT: Duration = Duration::from_mins(1);

fn chromium() -> &'static str {
    let ok = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "chromium is not installed: run `apt-get install chromium` (tests/setup does it)"
    );
    "chromium"
}

/// Chromium's flags for every run: headless, its own profile, no GPU,
/// autoplay allowed (the player starts muted anyway).
fn chromium_cmd(profile: &TempDir) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--mute-audio",
        "--hide-scrollbars",
        "--autoplay-policy=no-user-gesture-required",
    ])
    .arg(format!("--user-data-dir={}", profile.0.display()))
    // Its own process group: the whole browser (renderers, GPU and
    // utility processes) is killed at the end.
    .process_group(0);
    cmd
}

/// One player line as Chromium logs it.
#[derive(Debug, Clone, PartialEq)]
struct PlayerLine {
    t: f64,
    frames: u64,
    latency_ms: Option<i64>,
    errors: u64,
    raw: String,
}

fn parse_player_line(line: &str) -> Option<PlayerLine> {
    let start = line.find("fleetcast-player: t=")?;
    let text = line[start..].split('"').next()?.to_owned();
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    };
    Some(PlayerLine {
        t: field("t")?.parse().ok()?,
        frames: field("frames")?.parse().ok()?,
        latency_ms: field("latency_ms")?.parse().ok(),
        errors: field("errors")?.parse().ok()?,
        raw: text,
    })
}

/// A headless Chromium showing one page; its stderr collected.
struct Browser {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    _profile: TempDir,
}

impl Browser {
    fn open(url: &str) -> Self {
        let profile = TempDir::new("chromium");
        let mut child = chromium_cmd(&profile)
            .args(["--enable-logging=stderr", "--v=0", url])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting chromium");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log2.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            log,
            _profile: profile,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn player_lines(&self) -> Vec<PlayerLine> {
        self.lines()
            .iter()
            .filter_map(|l| parse_player_line(l))
            .collect()
    }

    /// Waits (bounded) until the player lines satisfy `done`.
    fn wait_player(&self, what: &str, done: impl Fn(&[PlayerLine]) -> bool) -> Vec<PlayerLine> {
        let deadline = Instant::now() + PLAY_LIMIT;
        loop {
            let lines = self.player_lines();
            if done(&lines) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; chromium's log:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Console messages that are not the player's progress lines
    /// (errors, CSP violations).
    fn console_complaints(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(":CONSOLE") && !l.contains("\"fleetcast-player: "))
            .collect()
    }
}

/// The processes of process group `pgid` (from `/proc/PID/stat`).
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                // After "PID (COMM) ": state, ppid, pgrp.
                .and_then(|st| {
                    st.rsplit_once(')')?
                        .1
                        .split_whitespace()
                        .nth(2)?
                        .parse::<u32>()
                        .ok()
                })
                == Some(pgid)
        })
        .collect()
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Each member by its own (positive) id: `kill -SIG -PGID` is not
        // safe with every kill(1) (some turn it into -1: every process).
        let pgid = self.child.id();
        for pid in group_members(pgid) {
            if pid > 1 && pid != std::process::id() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium's rendering of `url` (`--dump-dom`).
fn dump_dom(url: &str) -> String {
    let profile = TempDir::new("chromium");
    let child = chromium_cmd(&profile)
        .args(["--dump-dom", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting chromium");
    let out = output_bounded(child, Duration::from_mins(1), "chromium --dump-dom");
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A GET's status, headers (lower-case names) and body.
fn get_full(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    get_with(addr, path, "")
}

/// Like [`get_full`] with `extra` header lines (each ending in CRLF).
fn get_with(addr: SocketAddr, path: &str, extra: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Plays `url` until the picture moves; returns the player's lines.
fn play(url: &str) -> Vec<PlayerLine> {
    let browser = Browser::open(url);
    // Frames decoded, then the play head seen moving on with a latency
    // readout, three lines in a row without errors.
    let lines = browser.wait_player("the player to play", |lines| {
        lines.iter().any(|l| l.errors > 0)
            || lines.windows(3).any(|w| {
                w[0].frames > 0
                    && w[2].t > w[0].t
                    && w[2].frames > w[0].frames
                    && w.iter().all(|l| l.latency_ms.is_some())
            })
    });
    let last = lines.last().unwrap();
    assert_eq!(
        last.errors,
        0,
        "player errors: {}; chromium's log:\n{}",
        last.raw,
        browser.lines().join("\n")
    );
    let complaints = browser.console_complaints();
    assert!(
        complaints.is_empty(),
        "console errors (CSP?): {complaints:#?}"
    );
    lines
}

#[test]
fn the_page_lists_the_stream_and_chromium_plays_it_with_a_latency_readout() {
    let origin = Server::start();
    let mut ff = publish(&origin.rtmp_url("live", "browser"), 90);
    origin.wait_live("live", "browser");
    let base = format!("http://{}", origin.http);

    // Headers of the page and the script.
    let (status, headers, body) = get_full(origin.http, "/");
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    let csp = header(&headers, "content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("media-src 'self' blob:"),
        "{csp}"
    );
    let (status, headers, js) = get_full(origin.http, "/assets/player.js");
    assert_eq!(status, 200);
    assert!(js.contains("MediaSource"));
    assert!(header(&headers, "cache-control").is_some_and(|c| c.contains("max-age=")));
    let etag = header(&headers, "etag").unwrap().to_owned();
    // Revalidation: the same ETag gets 304 and no body.
    let (status, _, body) = get_with(
        origin.http,
        "/assets/player.js",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(status, 304);
    assert!(body.is_empty());
    // The player page: no-cache, the policy, the script by version.
    let (status, headers, body) = get_full(origin.http, "/watch/live/browser?a=1");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
    assert!(header(&headers, "content-security-policy").is_some());
    assert!(
        body.contains("data-src=\"/live/browser.mp4?a=1\""),
        "{body}"
    );
    assert!(
        body.contains(&format!("/assets/player.js?v={}", etag.trim_matches('"'))),
        "{body}"
    );

    // The browser renders the list with a link to the player.
    let dom = dump_dom(&format!("{base}/"));
    assert!(
        dom.contains("href=\"/watch/live/browser\""),
        "the stream is not listed:\n{dom}"
    );

    let lines = play(&format!("{base}/watch/live/browser"));
    let last = lines.last().unwrap();
    assert!(last.frames > 0 && last.latency_ms.is_some(), "{last:?}");
    eprintln!(
        "chromium on the origin: {} (latency readout {} ms)",
        last.raw,
        last.latency_ms.unwrap_or_default()
    );
    let _ = ff.kill();
    let _ = ff.wait();
}

#[test]
fn an_edge_lists_what_it_relays_and_its_watch_page_plays() {
    let origin = Server::start();
    let mut ff = publish(&origin.rtmp_url("live", "edgecam"), 90);
    origin.wait_live("live", "edgecam");
    let (edge, _cache) = start_edge(&urls_of(&origin), 5, &[]);
    let base = format!("http://{}", edge.http);

    // Nothing relayed yet: the edge's page lists nothing.
    let dom = dump_dom(&format!("{base}/"));
    assert!(dom.contains("No stream is live here now."), "{dom}");

    // The player's .mp4 request makes the edge pull the stream.
    let lines = play(&format!("{base}/watch/live/edgecam"));
    let last = lines.last().unwrap();
    eprintln!(
        "chromium on an edge: {} (latency readout {} ms)",
        last.raw,
        last.latency_ms.unwrap_or_default()
    );

    // Now the edge lists it.
    let dom = dump_dom(&format!("{base}/"));
    assert!(dom.contains("href=\"/watch/live/edgecam\""), "{dom}");
    let _ = ff.kill();
    let _ = ff.wait();
}

#[test]
fn signed_playback_tokens_carry_from_the_watch_page_to_the_stream() {
    let secret_dir = TempDir::new("play-secret");
    let secret = secret_dir.0.join("secret");
    std::fs::write(&secret, "browser-test-secret\n").unwrap();
    let origin = Server::start_with(&[&format!(
        "auth: {{ play_signing_secret_file: \"{}\" }}",
        secret.display()
    )]);
    let mut ff = publish(&origin.rtmp_url("live", "signed"), 90);
    origin.wait_live("live", "signed");
    let base = format!("http://{}", origin.http);

    // Signed: the page hands its query to /live/signed.mp4 and it plays.
    let out = Command::new(env!("CARGO_BIN_EXE_fleetcast-media"))
        .args(["sign-url", "--ttl-secs", "600", "--secret-file"])
        .arg(&secret)
        .arg(format!("{base}/live/signed.mp4"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed = String::from_utf8(out.stdout).unwrap();
    let query = signed.trim().split_once('?').unwrap().1.to_owned();
    let lines = play(&format!("{base}/watch/live/signed?{query}"));
    assert!(lines.last().unwrap().frames > 0);

    // Unsigned: the page loads, the stream is refused and the player says so.
    let browser = Browser::open(&format!("{base}/watch/live/signed"));
    let lines = browser.wait_player("the player to report the refusal", |l| {
        l.iter().any(|l| l.errors > 0)
    });
    let refused = lines.iter().find(|l| l.errors > 0).unwrap();
    assert!(refused.raw.contains("HTTP 403"), "{refused:?}");
    assert_eq!(refused.frames, 0);
    drop(browser);
    let _ = ff.kill();
    let _ = ff.wait();
}

#[test]
fn a_hostile_stream_name_in_the_watch_url_is_escaped() {
    let origin = Server::start();
    let (status, headers, body) = get_full(
        origin.http,
        "/watch/live/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    );
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("<script>"), "{body}");
    assert!(body.contains("&lt;script&gt;"), "{body}");
    assert!(header(&headers, "content-security-policy").is_some());
}

#[test]
fn player_lines_parse() {
    let l = parse_player_line(
        "[1:1:1127/100324.671238:INFO:CONSOLE:313] \"fleetcast-player: t=6.968 frames=19 latency_ms=349 errors=0\", source: x (313)",
    )
    .unwrap();
    assert_eq!(l.frames, 19);
    assert_eq!(l.latency_ms, Some(349));
    assert_eq!(l.errors, 0);
    assert!((l.t - 6.968).abs() < 1e-9);
    let none = parse_player_line("\"fleetcast-player: t=0.000 frames=0 latency_ms=none errors=1 last_error=[HTTP 403: refused]\"").unwrap();
    assert_eq!(none.latency_ms, None);
    assert_eq!(none.errors, 1);
    assert!(parse_player_line("something else").is_none());
}
