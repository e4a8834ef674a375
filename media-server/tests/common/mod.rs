//! Shared helpers of the media-server tests: start the real binary on
//! loopback with free ports and a temporary data directory, and drive real
//! clients (ffmpeg, ffprobe, rtmpdump). A missing tool fails the test with
//! the reason; nothing is skipped.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fails with how to install `tool` when it is not on PATH.
pub fn require(tool: &str) {
    let found = Command::new(tool)
        .arg(if tool == "rtmpdump" {
            "--help"
        } else {
            "-version"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "{tool} is not installed: run `apt-get install ffmpeg rtmpdump` (make deps does it)"
    );
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!(
            "fleetcast-media-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `fleetcast-media origin`.
pub struct Server {
    pub child: Child,
    pub rtmp: SocketAddr,
    /// The public port: playback, `/healthz`, `/readyz`.
    pub http: SocketAddr,
    /// The admin port: `/api/*`, `/metrics`.
    pub admin: SocketAddr,
    pub data: TempDir,
    log: Arc<Mutex<String>>,
}

/// A loopback address of its own for each server of this test process
/// (`127.P.P.N`, P from the process id), as every pod has its own IP: edges
/// reach an upstream's admin listener at the upstream's host and one
/// admin port ([`admin_port`]), so servers must not share a host.
pub fn next_loopback() -> std::net::IpAddr {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = std::process::id();
    let [_, _, hi, lo] = pid.to_be_bytes();
    // Never 127.0.0.x: tests connect from 127.0.0.1 and 127.0.0.2 as clients.
    let hi = hi.max(1);
    assert!(
        n < 250,
        "more servers than loopback addresses of this process"
    );
    std::net::IpAddr::from([127, hi, lo, u8::try_from(n + 2).unwrap()])
}

/// The admin port of every server of this test process (each on its own
/// loopback address), and so the `edge.upstream_admin_port` of its edges.
pub fn admin_port() -> u16 {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *PORT.get_or_init(|| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    })
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn field(line: &str, name: &str) -> Option<SocketAddr> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    line[start..].split_whitespace().next()?.parse().ok()
}

impl Server {
    /// Starts the origin with default settings.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts the origin; `extra_yaml` lines are added to a config file.
    pub fn start_with(extra_yaml: &[&str]) -> Self {
        Self::start_on(&format!("{}:0", next_loopback()), extra_yaml)
    }

    /// Like [`Server::start_with`] with the HTTP listener on `http` (a
    /// server that must know its own address, e.g. an edge advertising it;
    /// its other listeners take the same host).
    pub fn start_on(http: &str, extra_yaml: &[&str]) -> Self {
        Self::start_full(http, extra_yaml, None)
    }

    /// Like [`Server::start_with`] with `admin.token_file` set.
    pub fn start_with_token(token_file: &Path, extra_yaml: &[&str]) -> Self {
        Self::start_full(
            &format!("{}:0", next_loopback()),
            extra_yaml,
            Some(token_file),
        )
    }

    fn start_full(http: &str, extra_yaml: &[&str], token_file: Option<&Path>) -> Self {
        let data = TempDir::new("data");
        let host = http.parse::<SocketAddr>().unwrap().ip();
        let rtmp = format!("{host}:0");
        let admin = format!("{host}:{}", admin_port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetcast-media"));
        if extra_yaml.is_empty() && token_file.is_none() {
            cmd.args(["origin", "--rtmp", &rtmp, "--http", http, "--admin", &admin])
                .arg("--data")
                .arg(&data.0);
        } else {
            let token = token_file.map_or_else(String::new, |t| {
                format!(", token_file: \"{}\"", t.display())
            });
            let mut yaml = format!(
                "rtmp: {{ listen: \"{rtmp}\" }}\nhttp: {{ listen: \"{http}\" }}\nadmin: {{ listen: \"{admin}\"{token} }}\ndata_dir: \"{}\"\n",
                data.0.display()
            );
            for l in extra_yaml {
                yaml.push_str(l);
                yaml.push('\n');
            }
            let path = data.0.join("config.yaml");
            std::fs::write(&path, yaml).unwrap();
            cmd.arg("--config").arg(&path);
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting fleetcast-media");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let line = strip_ansi(&line);
                if let (Some(r), Some(h), Some(a)) = (
                    field(&line, "rtmp"),
                    field(&line, "http"),
                    field(&line, "admin"),
                ) && let Some(tx) = tx.take()
                {
                    let _ = tx.send((r, h, a));
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let (rtmp, http, admin) = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!(
                    "server did not report its listeners: {}",
                    log.lock().unwrap()
                )
            });
        Self {
            child,
            rtmp,
            http,
            admin,
            data,
            log,
        }
    }

    pub fn rtmp_url(&self, app: &str, name: &str) -> String {
        format!("rtmp://{}/{app}/{name}", self.rtmp)
    }

    pub fn flv_url(&self, app: &str, name: &str) -> String {
        format!("http://{}/{app}/{name}.flv", self.http)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Fails unless the server logs a line containing `needle` within 10 s.
    /// The log is read from the server's stderr by a thread, so a line it
    /// wrote just before answering a client can reach the test after the
    /// answer does.
    pub fn expect_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the server never logged {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET on the public port over a plain socket (whole response).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path)
    }

    /// GET on the admin port (`/api/*`, `/metrics`).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path)
    }

    /// `/api/streams` as JSON.
    pub fn streams(&self) -> serde_json::Value {
        let (status, body) = self.admin_get("/api/streams");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls `/api/streams` until `pred` holds (bounded).
    pub fn wait_streams(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.streams();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last /api/streams: {s}\nserver log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `app/name` is live.
    pub fn wait_live(&self, app: &str, name: &str) -> serde_json::Value {
        self.wait_streams(&format!("{app}/{name} to be live"), |s| {
            stream_of(s, app, name).is_some()
        })
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        wait_bounded(
            &mut self.child,
            Duration::from_secs(30),
            "fleetcast-media after SIGTERM",
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The entry of `/api/streams` for app/name.
pub fn stream_of<'a>(
    s: &'a serde_json::Value,
    app: &str,
    name: &str,
) -> Option<&'a serde_json::Value> {
    s["streams"]
        .as_array()?
        .iter()
        .find(|e| e["app"] == app && e["name"] == name)
}

/// A one-shot HTTP GET.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Waits for a child with a bound; kills it and fails past the bound.
pub fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Collects a child's output with a bound.
pub fn output_bounded(child: Child, limit: Duration, what: &str) -> Output {
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(limit) else {
        let _ = Command::new("kill")
            .args(["-KILL", &id.to_string()])
            .status();
        panic!("{what} did not finish within {limit:?}");
    };
    out.unwrap()
}

/// ffmpeg reading the generated H.264/AAC test pattern (`size` at 30 fps, a
/// 1 kHz tone), in real time when `realtime`, with the encoder settings every
/// media test uses (x264 ultrafast, a keyframe each second, AAC). The caller
/// adds its duration, any other output options and the output.
pub fn test_pattern(size: &str, realtime: bool) -> Command {
    require("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]);
    if realtime {
        cmd.arg("-re");
    }
    cmd.args([
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={size}:rate=30"),
    ])
    .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100"])
    .args(["-map", "0:v", "-map", "1:a"])
    .args([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "30",
        "-c:a",
        "aac",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

/// ffmpeg publishing the generated H.264/AAC test pattern for `secs` seconds in real time.
pub fn publish(url: &str, secs: u32) -> Child {
    publish_args(url, secs, &[])
}

/// Like [`publish`] with extra encoder arguments.
pub fn publish_args(url: &str, secs: u32, extra: &[&str]) -> Child {
    test_pattern("640x360", true)
        .args(["-tune", "zerolatency"])
        .args(extra)
        .args(["-t", &secs.to_string(), "-f", "flv", url])
        .spawn()
        .expect("starting ffmpeg")
}

/// Packets per stream and codec names as ffprobe reads `url` to its end.
#[derive(Debug, Default)]
pub struct Probe {
    pub video_codec: String,
    pub audio_codec: String,
    pub video_packets: u64,
    pub audio_packets: u64,
}

/// Starts ffprobe counting packets of `url` until the stream ends.
pub fn spawn_probe(url: &str) -> Child {
    require("ffprobe");
    Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries"])
        .args([
            "stream=codec_type,codec_name,nb_read_packets",
            "-of",
            "json",
            url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ffprobe")
}

/// Finishes a [`spawn_probe`].
pub fn finish_probe(child: Child, what: &str) -> Probe {
    let out = output_bounded(child, Duration::from_mins(1), what);
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut p = Probe::default();
    for s in v["streams"].as_array().unwrap() {
        let n = s["nb_read_packets"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let codec = s["codec_name"].as_str().unwrap_or_default().to_owned();
        match s["codec_type"].as_str() {
            Some("video") => {
                p.video_codec = codec;
                p.video_packets = n;
            }
            Some("audio") => {
                p.audio_codec = codec;
                p.audio_packets = n;
            }
            _ => {}
        }
    }
    p
}

/// Parses Prometheus text: every sample as (name with labels, value).
pub fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad metrics line {l:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (name.to_owned(), value)
        })
        .collect()
}

/// A metric's value by exact name-with-labels.
pub fn metric(samples: &[(String, f64)], name: &str) -> f64 {
    samples
        .iter()
        .find(|(n, _)| n == name)
        .map_or_else(|| panic!("metric {name} missing"), |(_, v)| *v)
}

/// Reads a file written by a client.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Opens an RTMP connection with the crate's own pure client state machine
/// over a blocking socket, and runs it until playback started.
pub fn rtmp_play_raw(
    server: &Server,
    app: &str,
    name: &str,
    recv_buffer: Option<usize>,
) -> (TcpStream, fleetcast_media::rtmp::ClientSession) {
    use fleetcast_media::rtmp::{ClientEvent, ClientSession, Mode};
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket.connect(&server.rtmp.into()).unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let url = format!("rtmp://{}/{app}", server.rtmp);
    let mut c = ClientSession::new(Mode::Play, &url, app, name, 16 << 20);
    let mut buf = vec![0u8; 65536];
    for _ in 0..1000 {
        if let Some(out) = c.take_output() {
            s.write_all(&out).unwrap();
        }
        if c.is_started() {
            return (s, c);
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "server closed the connection before play started");
        for ev in c.feed(&buf[..n]).unwrap() {
            if let ClientEvent::Status { level, code, .. } = ev {
                assert_ne!(level, "error", "play refused: {code}");
            }
        }
    }
    panic!("play did not start");
}

/// Performs the simple RTMP handshake on a raw socket.
pub fn rtmp_handshake(s: &mut TcpStream) {
    use fleetcast_media::rtmp::handshake::{ClientHandshake, PACKET_LEN};
    let mut out = bytes::BytesMut::new();
    let mut hs = ClientHandshake::start(&mut out, 1);
    s.write_all(&out).unwrap();
    let mut input = bytes::BytesMut::new();
    input.resize(1 + 2 * PACKET_LEN, 0);
    s.read_exact(&mut input).unwrap();
    let mut c2 = bytes::BytesMut::new();
    assert!(hs.feed(&mut input, &mut c2).unwrap());
    s.write_all(&c2).unwrap();
}

/// True when the server closes `s` (EOF or reset) within the read timeout.
pub fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Reads a raw player until the server says the stream was unpublished;
/// returns the number of video tags received.
pub fn drain_until_unpublished(
    s: &mut TcpStream,
    c: &mut fleetcast_media::rtmp::ClientSession,
) -> usize {
    use fleetcast_media::rtmp::ClientEvent;
    // Longer than the edge's default failover window (45 s).
    s.set_read_timeout(Some(Duration::from_mins(1))).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut video = 0;
    loop {
        if let Some(out) = c.take_output() {
            s.write_all(&out).unwrap();
        }
        let n = s.read(&mut buf).expect("reading the stalled viewer");
        assert!(n > 0, "server closed before saying the stream ended");
        for ev in c.feed(&buf[..n]).unwrap() {
            match ev {
                ClientEvent::Media(t) if t.kind == fleetcast_media::media::TagKind::Video => {
                    video += 1;
                }
                ClientEvent::Status { code, .. } if code == "NetStream.Play.UnpublishNotify" => {
                    return video;
                }
                _ => {}
            }
        }
    }
}

/// A 3 s 320x240 test MP4 at `path` (moov first when `faststart`).
pub fn make_mp4(path: &std::path::Path, faststart: bool) {
    let mut cmd = test_pattern("320x240", false);
    cmd.args(["-t", "3"]);
    if faststart {
        cmd.args(["-movflags", "+faststart"]);
    }
    let out = output_bounded(
        cmd.arg(path).spawn().unwrap(),
        Duration::from_mins(1),
        "ffmpeg making an MP4",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads what the peer sends until it closes the connection; panics,
/// naming `who`, when it keeps it open past the socket's read timeout.
pub fn read_until_closed(s: &mut TcpStream, who: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "{who} kept the connection open; got {:?}",
                    String::from_utf8_lossy(&got)
                )
            }
            Err(_) => break,
        }
    }
    got
}
