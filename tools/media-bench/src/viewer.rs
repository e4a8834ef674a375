//! One viewer's connection: HTTP-FLV (GET + chunked/plain body + FLV tags)
//! or RTMP (handshake, connect, createStream, play, through
//! `fleetcast_media`'s RTMP client session). Every byte read and every tag goes into the viewer's stats.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use fleetcast_media::rtmp::{ClientEvent, ClientSession, Mode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::chunked::{ChunkedError, Dechunker};
use crate::ending::{is_end_status, is_restart_status};
use crate::flv::{self, FlvReader, TagInfo};
use crate::stats::ViewerStats;
use crate::target::Target;

/// Read buffer per viewer: large enough for several frames per syscall.
const READ_BUF: usize = 16 * 1024;

/// Largest RTMP message accepted (a keyframe of a high-bitrate stream fits).
const MAX_MESSAGE: u32 = 16 * 1024 * 1024;

/// Counters all viewers share, for the progress line.
#[derive(Debug)]
pub struct Shared {
    /// The run's clock origin.
    pub start: Instant,
    /// Bytes read by all viewers.
    pub bytes: AtomicU64,
    /// Video frames received by all viewers.
    pub video_frames: AtomicU64,
    /// Viewers connected now.
    pub active: AtomicUsize,
    /// Viewers whose play the server accepted, now.
    pub playing: AtomicUsize,
    /// Viewers that failed.
    pub failed: AtomicUsize,
    /// Sessions told to leave.
    pub told: AtomicUsize,
    /// Sessions cut without a word.
    pub cut: AtomicUsize,
    /// Reconnects started.
    pub reconnects: AtomicUsize,
    /// Reconnects that received a keyframe (counted at that keyframe).
    pub reconnected_ok: AtomicUsize,
}

impl Shared {
    /// Counters starting now.
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// Counters on a clock starting at `start`.
    pub fn starting_at(start: Instant) -> Self {
        Self {
            start,
            bytes: AtomicU64::new(0),
            video_frames: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            playing: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            told: AtomicUsize::new(0),
            cut: AtomicUsize::new(0),
            reconnects: AtomicUsize::new(0),
            reconnected_ok: AtomicUsize::new(0),
        }
    }

    /// Milliseconds since the run started.
    pub fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

/// How a viewer plays.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlayMode {
    /// Return as soon as the first keyframe arrives (`first-frame`).
    pub until_keyframe: bool,
    /// Leave as soon as the server says the stream ended (to reconnect, as
    /// players do) instead of waiting for it to close the connection.
    pub leave_on_end: bool,
    /// No byte for this long, while not told the stream ended, is a cut.
    pub stall: Option<Duration>,
}

/// Why [`play`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The server said the stream ended before the connection closed (the
    /// RTMP status code, or how the HTTP-FLV response ended).
    Told(String),
    /// The connection closed or stalled without a word.
    Cut(String),
    /// A keyframe arrived and `until_keyframe` was asked.
    Keyframe,
}

/// Plays `target` until the server ends the session (the caller bounds
/// time). Errors (refused, bad response, reset) are returned as such; the
/// caller knows from `stats.session_started` whether the viewer was playing.
pub async fn play(
    target: &Target,
    stats: &mut ViewerStats,
    shared: &Shared,
    mode: PlayMode,
) -> Result<Ended> {
    match target {
        Target::HttpFlv { addr, path, host } => {
            let mut sock = TcpStream::connect(addr).await.context("connect")?;
            sock.set_nodelay(true).context("connect")?;
            play_http_flv(&mut sock, path, host, stats, shared, mode).await
        }
        Target::Rtmp {
            addr,
            app,
            name,
            tc_url,
        } => {
            let mut sock = TcpStream::connect(addr).await.context("connect")?;
            sock.set_nodelay(true).context("connect")?;
            let names = RtmpNames { app, name, tc_url };
            play_rtmp(&mut sock, &names, stats, shared, mode).await
        }
    }
}

fn on_started(stats: &mut ViewerStats, shared: &Shared, now: f64) {
    if !stats.session_started {
        shared.playing.fetch_add(1, Ordering::Relaxed);
    }
    stats.on_connected(now);
}

fn record_tag(tag: &TagInfo, stats: &mut ViewerStats, shared: &Shared, now: f64) {
    if tag.is_video_frame() {
        shared.video_frames.fetch_add(1, Ordering::Relaxed);
        // Live, for the progress line: a reconnect just played again.
        if tag.keyframe && stats.session_keyframes == 0 && stats.session_attempt > 0 {
            shared.reconnected_ok.fetch_add(1, Ordering::Relaxed);
        }
    }
    stats.on_tag(tag, now);
}

/// What one read gave.
enum Read {
    /// This many bytes.
    Data(usize),
    /// The server closed its side.
    Eof,
    /// Nothing within the stall limit.
    Stalled(Duration),
}

async fn read_some(
    sock: &mut TcpStream,
    buf: &mut [u8],
    stats: &mut ViewerStats,
    shared: &Shared,
    stall: Option<Duration>,
) -> Result<Read> {
    let n = match stall {
        Some(limit) => match tokio::time::timeout(limit, sock.read(buf)).await {
            Ok(r) => r.context("read")?,
            Err(_) => return Ok(Read::Stalled(limit)),
        },
        None => sock.read(buf).await.context("read")?,
    };
    if n == 0 {
        return Ok(Read::Eof);
    }
    stats.on_bytes(n, shared.now_ms());
    shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
    Ok(Read::Data(n))
}

fn stalled(limit: Duration) -> Ended {
    Ended::Cut(format!("stalled: no data for {limit:?}"))
}

fn closed() -> Ended {
    Ended::Cut("closed by server".to_owned())
}

async fn play_http_flv(
    sock: &mut TcpStream,
    path: &str,
    host: &str,
    stats: &mut ViewerStats,
    shared: &Shared,
    mode: PlayMode,
) -> Result<Ended> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: media-bench\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(request.as_bytes())
        .await
        .context("send request")?;
    let mut buf = vec![0u8; READ_BUF];
    let mut head = Vec::new();
    let (body_start, framing) = loop {
        let n = match read_some(sock, &mut buf, stats, shared, mode.stall).await? {
            Read::Data(n) => n,
            Read::Eof => bail!("closed by server before the response head"),
            Read::Stalled(limit) => return Ok(stalled(limit)),
        };
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(len)) => {
                let code = response.code.unwrap_or(0);
                if code != 200 {
                    bail!("http status: {code}");
                }
                break (len, Framing::of(response.headers));
            }
            Ok(httparse::Status::Partial) if head.len() < READ_BUF => {}
            Ok(httparse::Status::Partial) => bail!("bad response: head too long"),
            Err(e) => bail!("bad response: {e}"),
        }
    };
    on_started(stats, shared, shared.now_ms());
    let mut body = Body {
        flv: FlvReader::new(),
        framing,
    };
    if let Some(end) = body.feed(&head[body_start..], stats, shared)? {
        return Ok(Ended::Told(end.to_owned()));
    }
    loop {
        if mode.until_keyframe && stats.first_keyframe_ms.is_some() {
            return Ok(Ended::Keyframe);
        }
        let n = match read_some(sock, &mut buf, stats, shared, mode.stall).await? {
            Read::Data(n) => n,
            Read::Eof => return Ok(closed()),
            Read::Stalled(limit) => return Ok(stalled(limit)),
        };
        if let Some(end) = body.feed(&buf[..n], stats, shared)? {
            return Ok(Ended::Told(end.to_owned()));
        }
    }
}

/// How an HTTP-FLV response body is delimited, so its end is recognised.
enum Framing {
    /// `Transfer-Encoding: chunked`: ends with a zero-size chunk.
    Chunked(Dechunker),
    /// `Content-Length`: ends after this many more bytes.
    Length(u64),
    /// Neither: only the connection closing ends it (not a clean end).
    UntilClose,
}

impl Framing {
    fn of(headers: &[httparse::Header<'_>]) -> Self {
        let value = |name: &str| {
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
        };
        if value("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            Framing::Chunked(Dechunker::new())
        } else if let Some(len) = value("content-length").and_then(|v| v.trim().parse().ok()) {
            Framing::Length(len)
        } else {
            Framing::UntilClose
        }
    }
}

/// The decoding layers of an HTTP-FLV body.
struct Body {
    flv: FlvReader,
    framing: Framing,
}

impl Body {
    /// Decodes `data`; `Some(how)` once the response ended cleanly.
    fn feed(
        &mut self,
        data: &[u8],
        stats: &mut ViewerStats,
        shared: &Shared,
    ) -> Result<Option<&'static str>> {
        let now = shared.now_ms();
        let flv = &mut self.flv;
        let mut on_payload =
            |payload: &[u8]| flv.feed(payload, |tag| record_tag(&tag, stats, shared, now));
        match &mut self.framing {
            Framing::UntilClose => on_payload(data).context("bad flv")?,
            Framing::Length(left) => {
                let take = usize::try_from(*left).map_or(data.len(), |l| l.min(data.len()));
                on_payload(&data[..take]).context("bad flv")?;
                *left -= take as u64;
                if *left == 0 {
                    return Ok(Some("end of response (content-length)"));
                }
            }
            Framing::Chunked(d) => match d.feed(data, on_payload) {
                Ok(r) => r.context("bad flv")?,
                Err(ChunkedError::Ended) => return Ok(Some("end of chunked response")),
                Err(e) => bail!("bad chunked body: {e}"),
            },
        }
        Ok(None)
    }
}

/// The names an RTMP play needs.
struct RtmpNames<'a> {
    app: &'a str,
    name: &'a str,
    tc_url: &'a str,
}

async fn play_rtmp(
    sock: &mut TcpStream,
    names: &RtmpNames<'_>,
    stats: &mut ViewerStats,
    shared: &Shared,
    mode: PlayMode,
) -> Result<Ended> {
    let mut session =
        ClientSession::new(Mode::Play, names.tc_url, names.app, names.name, MAX_MESSAGE);
    let mut buf = vec![0u8; READ_BUF];
    // The end status the server sent, until the stream starts again.
    let mut told: Option<String> = None;
    loop {
        if let Some(out) = session.take_output() {
            sock.write_all(&out).await.context("write")?;
        }
        if mode.until_keyframe && stats.first_keyframe_ms.is_some() {
            return Ok(Ended::Keyframe);
        }
        // Once told, waiting quietly (for a republish) is no stall.
        let stall = if told.is_some() { None } else { mode.stall };
        let n = match read_some(sock, &mut buf, stats, shared, stall).await {
            Ok(Read::Data(n)) => n,
            Ok(Read::Eof) => return Ok(told.map_or_else(closed, Ended::Told)),
            Ok(Read::Stalled(limit)) => return Ok(stalled(limit)),
            // Reset after the word: still told.
            Err(e) => return told.map(Ended::Told).ok_or(e),
        };
        let events = session.feed(&buf[..n]).context("rtmp")?;
        let now = shared.now_ms();
        for event in events {
            match event {
                ClientEvent::Started => on_started(stats, shared, now),
                ClientEvent::Media(tag) => {
                    let size = u32::try_from(tag.data.len()).unwrap_or(u32::MAX);
                    let prefix = &tag.data[..tag.data.len().min(2)];
                    let info = flv::classify(tag.kind.type_id(), tag.timestamp, size, prefix);
                    record_tag(&info, stats, shared, now);
                }
                ClientEvent::Status { level, code, .. }
                    if level == "error" || is_failure(&code) =>
                {
                    bail!("rtmp status: {code}");
                }
                ClientEvent::Status { code, .. } if is_end_status(&code) => {
                    if mode.leave_on_end {
                        return Ok(Ended::Told(code));
                    }
                    told = Some(code);
                }
                ClientEvent::Status { code, .. } if is_restart_status(&code) => told = None,
                _ => {}
            }
        }
    }
}

/// `onStatus` codes that end a play attempt.
fn is_failure(code: &str) -> bool {
    ["Failed", "NotFound", "BadName", "Rejected"]
        .iter()
        .any(|end| code.ends_with(end))
}
