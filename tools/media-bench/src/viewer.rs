//! One viewer's connection: HTTP-FLV (GET + chunked/plain body + FLV tags)
//! or RTMP (handshake, connect, createStream, play, through
//! `fleetcast_media`'s RTMP client session). Every byte read and every tag goes into the viewer's stats.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context as _, Result, bail};
use fleetcast_media::rtmp::{ClientEvent, ClientSession, Mode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::chunked::Dechunker;
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
    /// Viewers that failed.
    pub failed: AtomicUsize,
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
            failed: AtomicUsize::new(0),
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

/// Plays `target` until the server closes or errs (the caller bounds time).
/// With `until_keyframe`, returns as soon as the first keyframe arrives.
pub async fn play(
    target: &Target,
    stats: &mut ViewerStats,
    shared: &Shared,
    until_keyframe: bool,
) -> Result<()> {
    match target {
        Target::HttpFlv { addr, path, host } => {
            let mut sock = TcpStream::connect(addr).await.context("connect")?;
            sock.set_nodelay(true).context("connect")?;
            play_http_flv(&mut sock, path, host, stats, shared, until_keyframe).await
        }
        Target::Rtmp {
            addr,
            app,
            name,
            tc_url,
        } => {
            let mut sock = TcpStream::connect(addr).await.context("connect")?;
            sock.set_nodelay(true).context("connect")?;
            play_rtmp(&mut sock, app, name, tc_url, stats, shared, until_keyframe).await
        }
    }
}

fn record_tag(tag: &TagInfo, stats: &mut ViewerStats, shared: &Shared, now: f64) {
    if tag.is_video_frame() {
        shared.video_frames.fetch_add(1, Ordering::Relaxed);
    }
    stats.on_tag(tag, now);
}

async fn read_some(
    sock: &mut TcpStream,
    buf: &mut [u8],
    stats: &mut ViewerStats,
    shared: &Shared,
) -> Result<usize> {
    let n = sock.read(buf).await.context("read")?;
    if n == 0 {
        bail!("closed by server");
    }
    stats.on_bytes(n, shared.now_ms());
    shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
    Ok(n)
}

async fn play_http_flv(
    sock: &mut TcpStream,
    path: &str,
    host: &str,
    stats: &mut ViewerStats,
    shared: &Shared,
    until_keyframe: bool,
) -> Result<()> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: media-bench\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(request.as_bytes())
        .await
        .context("send request")?;
    let mut buf = vec![0u8; READ_BUF];
    let mut head = Vec::new();
    let (body_start, chunked) = loop {
        let n = read_some(sock, &mut buf, stats, shared).await?;
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(len)) => {
                let code = response.code.unwrap_or(0);
                if code != 200 {
                    bail!("http status: {code}");
                }
                let chunked = response.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("transfer-encoding")
                        && String::from_utf8_lossy(h.value)
                            .to_ascii_lowercase()
                            .contains("chunked")
                });
                break (len, chunked);
            }
            Ok(httparse::Status::Partial) if head.len() < READ_BUF => {}
            Ok(httparse::Status::Partial) => bail!("bad response: head too long"),
            Err(e) => bail!("bad response: {e}"),
        }
    };
    stats.on_connected(shared.now_ms());
    let mut body = Body {
        flv: FlvReader::new(),
        dechunk: chunked.then(Dechunker::new),
    };
    body.feed(&head[body_start..], stats, shared)?;
    while !(until_keyframe && stats.first_keyframe_ms.is_some()) {
        let n = read_some(sock, &mut buf, stats, shared).await?;
        body.feed(&buf[..n], stats, shared)?;
    }
    Ok(())
}

/// The decoding layers of an HTTP-FLV body.
struct Body {
    flv: FlvReader,
    dechunk: Option<Dechunker>,
}

impl Body {
    fn feed(&mut self, data: &[u8], stats: &mut ViewerStats, shared: &Shared) -> Result<()> {
        let now = shared.now_ms();
        let flv = &mut self.flv;
        let mut on_payload =
            |payload: &[u8]| flv.feed(payload, |tag| record_tag(&tag, stats, shared, now));
        match &mut self.dechunk {
            None => on_payload(data).context("bad flv")?,
            Some(d) => d
                .feed(data, on_payload)
                .map_err(|e| anyhow::anyhow!("bad chunked body: {e}"))?
                .context("bad flv")?,
        }
        Ok(())
    }
}

async fn play_rtmp(
    sock: &mut TcpStream,
    app: &str,
    name: &str,
    tc_url: &str,
    stats: &mut ViewerStats,
    shared: &Shared,
    until_keyframe: bool,
) -> Result<()> {
    let mut session = ClientSession::new(Mode::Play, tc_url, app, name, MAX_MESSAGE);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        if let Some(out) = session.take_output() {
            sock.write_all(&out).await.context("write")?;
        }
        if until_keyframe && stats.first_keyframe_ms.is_some() {
            return Ok(());
        }
        let n = read_some(sock, &mut buf, stats, shared).await?;
        let events = session.feed(&buf[..n]).context("rtmp")?;
        let now = shared.now_ms();
        for event in events {
            match event {
                ClientEvent::Started => stats.on_connected(now),
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
