//! One viewer's connection: HTTP-FLV (GET + chunked/plain body + FLV tags)
//! or RTMP (handshake, connect, createStream, play, via `rml_rtmp`'s client
//! session). Every byte read and every tag goes into the viewer's stats.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context as _, Result, bail};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::chunked::Dechunker;
use crate::flv::{self, FlvReader, TagInfo};
use crate::stats::ViewerStats;
use crate::target::Target;

/// Read buffer per viewer: large enough for several frames per syscall.
const READ_BUF: usize = 16 * 1024;

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
    let mut handshake = Handshake::new(PeerType::Client);
    let c0c1 = handshake
        .generate_outbound_p0_and_p1()
        .context("handshake")?;
    sock.write_all(&c0c1).await.context("handshake")?;
    let mut buf = vec![0u8; READ_BUF];
    let leftover = loop {
        let n = read_some(sock, &mut buf, stats, shared)
            .await
            .context("handshake")?;
        match handshake.process_bytes(&buf[..n]).context("handshake")? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).await.context("handshake")?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes).await.context("handshake")?;
                break remaining_bytes;
            }
        }
    };
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(tc_url.to_owned());
    let (mut session, initial) = ClientSession::new(config).context("rtmp session")?;
    let mut rtmp = RtmpPlay {
        name,
        out: Vec::new(),
    };
    rtmp.handle(&mut session, initial, stats, shared)?;
    let connect = session
        .request_connection(app.to_owned())
        .context("rtmp connect")?;
    rtmp.handle(&mut session, vec![connect], stats, shared)?;
    let results = session.handle_input(&leftover).context("rtmp")?;
    rtmp.handle(&mut session, results, stats, shared)?;
    loop {
        if !rtmp.out.is_empty() {
            sock.write_all(&rtmp.out).await.context("write")?;
            rtmp.out.clear();
        }
        if until_keyframe && stats.first_keyframe_ms.is_some() {
            return Ok(());
        }
        let n = read_some(sock, &mut buf, stats, shared).await?;
        let results = session.handle_input(&buf[..n]).context("rtmp")?;
        rtmp.handle(&mut session, results, stats, shared)?;
    }
}

/// Reacts to the RTMP client session's results: sends what it asks, plays
/// once connected, turns media messages into tags.
struct RtmpPlay<'a> {
    name: &'a str,
    out: Vec<u8>,
}

impl RtmpPlay<'_> {
    fn handle(
        &mut self,
        session: &mut ClientSession,
        results: Vec<ClientSessionResult>,
        stats: &mut ViewerStats,
        shared: &Shared,
    ) -> Result<()> {
        let mut queue = std::collections::VecDeque::from(results);
        while let Some(result) = queue.pop_front() {
            let event = match result {
                ClientSessionResult::OutboundResponse(packet) => {
                    self.out.extend_from_slice(&packet.bytes);
                    continue;
                }
                ClientSessionResult::UnhandleableMessageReceived(_) => continue,
                ClientSessionResult::RaisedEvent(event) => event,
            };
            let now = shared.now_ms();
            match event {
                ClientSessionEvent::ConnectionRequestAccepted => {
                    let play = session
                        .request_playback(self.name.to_owned())
                        .context("rtmp play")?;
                    queue.push_back(play);
                }
                ClientSessionEvent::ConnectionRequestRejected { description } => {
                    bail!("rtmp connect rejected: {description}");
                }
                ClientSessionEvent::PlaybackRequestAccepted => stats.on_connected(now),
                ClientSessionEvent::VideoDataReceived { timestamp, data } => {
                    let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
                    let tag = flv::classify(
                        flv::VIDEO,
                        timestamp.value,
                        size,
                        &data[..data.len().min(2)],
                    );
                    record_tag(&tag, stats, shared, now);
                }
                ClientSessionEvent::AudioDataReceived { timestamp, data } => {
                    let size = u32::try_from(data.len()).unwrap_or(u32::MAX);
                    let tag = flv::classify(
                        flv::AUDIO,
                        timestamp.value,
                        size,
                        &data[..data.len().min(2)],
                    );
                    record_tag(&tag, stats, shared, now);
                }
                ClientSessionEvent::UnhandleableOnStatusCode { code }
                    if code.ends_with("Failed")
                        || code.ends_with("NotFound")
                        || code.ends_with("BadName") =>
                {
                    bail!("rtmp play status: {code}");
                }
                _ => {}
            }
        }
        Ok(())
    }
}
