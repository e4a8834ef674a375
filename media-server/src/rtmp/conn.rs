//! The tokio layer of an RTMP connection: owns the socket, feeds bytes to
//! the [`ServerSession`], connects it to the hub, and writes everything
//! queued with one vectored write whenever the socket is writable. Media
//! bytes are the shared, once-encoded chunks of each hub frame.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::message;
use super::session::{ServerEvent, ServerSession, SessionConfig};
use crate::config::check_name;
use crate::hub::{Delivery, Protocol, PublishError, Publisher, StreamKey, Subscriber};
use crate::server::AppState;

/// Stop pulling media for a viewer while this much is queued for its socket.
const MAX_QUEUED_BYTES: usize = 4 * 1024 * 1024;
/// Buffers per vectored write.
const MAX_IOVECS: usize = 64;
/// The application that plays files (`rtmp://HOST/vod/FILE`).
pub const VOD_APP: &str = "vod";
/// Time a closing connection gets to flush its last status messages.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

thread_local! {
    /// Read buffer shared by the connections a worker thread runs (reads
    /// are synchronous `try_read`s, never held across an await).
    static READ_BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; 64 * 1024].into_boxed_slice());
}

/// Why this connection ends.
#[derive(Debug)]
enum End {
    PeerClosed,
    Error(String),
    Timeout(&'static str),
    /// The viewer kept falling behind the stream.
    TooSlow,
    Done,
}

struct Conn {
    socket: TcpStream,
    peer: SocketAddr,
    state: AppState,
    session: ServerSession,
    queue: VecDeque<Bytes>,
    queued: usize,
    app: Option<String>,
    key: Option<StreamKey>,
    publisher: Option<Publisher>,
    subscriber: Option<Subscriber>,
    closing: Option<Instant>,
    /// A VOD play waiting to be opened (file I/O happens in the loop, not in event handling).
    vod_request: Option<String>,
    /// A publish or play waiting for its authorization (webhooks are
    /// asked in the loop, not in event handling; see `conn_auth`).
    auth_request: Option<AuthRequest>,
    /// Directory part of a VOD path that the client put into the app name.
    vod_dir: Option<String>,
    /// Tags of the VOD file being played, paced by its own task.
    vod: Option<tokio::sync::mpsc::Receiver<crate::media::Tag>>,
    last_activity: Instant,
    /// When the connection was accepted (the handshake timeout counts from here).
    started: Instant,
    chunk_size: usize,
    /// On an edge, a play waiting for its stream to be pulled.
    pending_play: Option<PendingPlay>,
    /// The client is an edge's relay pull (`ServerEvent::Connect::relay`).
    relay: bool,
    /// A publisher's bitrate cap (`limits.max_publish_bitrate`), from its first media.
    ingest: Option<super::ingest_rate::IngestMeter>,
    /// Fires when the admin API disconnects this connection's publisher.
    kicked: Option<std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>>,
}

/// Publish and play authorization (`conn_auth`).
#[path = "conn_auth.rs"]
mod auth;
use auth::AuthRequest;

/// A play on an edge whose stream is being pulled from upstream.
struct PendingPlay {
    name: String,
    key: StreamKey,
    /// The player was already playing (its stream ended on this edge).
    resume: bool,
    ready: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), crate::edge::EdgeError>> + Send>,
    >,
}

/// Serves one RTMP connection until it ends or the server shuts down.
pub async fn serve(socket: TcpStream, peer: SocketAddr, state: AppState) {
    let limits = &state.config.limits;
    let config = SessionConfig {
        chunk_size: state.config.rtmp.chunk_size,
        max_message_size: limits.max_message_size,
    };
    // Vary handshake filler per connection; no secrecy needed.
    let seed = u32::from(peer.port()) ^ (std::process::id() << 16);
    let chunk_size = config.chunk_size as usize;
    let mut conn = Conn {
        socket,
        peer,
        session: ServerSession::new(config, seed),
        state,
        queue: VecDeque::new(),
        queued: 0,
        app: None,
        key: None,
        publisher: None,
        subscriber: None,
        closing: None,
        vod_request: None,
        auth_request: None,
        vod_dir: None,
        vod: None,
        last_activity: Instant::now(),
        started: Instant::now(),
        chunk_size,
        pending_play: None,
        relay: false,
        ingest: None,
        kicked: None,
    };
    let end = conn.run().await;
    match &end {
        End::Error(reason) => {
            conn.state
                .hub
                .metrics()
                .connections_rejected
                .fetch_add(1, Ordering::Relaxed);
            warn!(peer = %conn.peer, stream = ?conn.key.as_ref().map(ToString::to_string), %reason, "RTMP connection closed");
        }
        End::Timeout(what) => {
            if *what == "handshake" {
                let refused = &conn.state.hub.metrics().refused;
                refused.count(crate::peer_limits::Refusal::RtmpHandshakeTimeout);
            }
            info!(peer = %conn.peer, stream = ?conn.key.as_ref().map(ToString::to_string), "RTMP connection closed: {what} timeout");
        }
        End::TooSlow => {
            info!(peer = %conn.peer, stream = ?conn.key.as_ref().map(ToString::to_string), "RTMP viewer disconnected: kept falling behind");
        }
        End::PeerClosed | End::Done => {
            debug!(peer = %conn.peer, "RTMP connection closed");
        }
    }
    if let Some(p) = conn.publisher.take() {
        info!(stream = %p.key(), "publish ended");
    }
}

impl Conn {
    fn push(&mut self, b: Bytes) {
        self.queued += b.len();
        self.queue.push_back(b);
    }

    fn take_session_output(&mut self) {
        if let Some(b) = self.session.take_output() {
            self.push(b);
        }
    }

    fn deadline(&self) -> Instant {
        let limits = &self.state.config.limits;
        if let Some(t) = self.closing {
            t
        } else if !self.session.handshake_done() {
            self.started + Duration::from_secs(limits.handshake_timeout_secs)
        } else {
            self.last_activity + Duration::from_secs(limits.idle_timeout_secs)
        }
    }

    /// An edge's relay pull takes every frame as it comes; players are
    /// woken in batches (`playback.write_interval_ms`).
    fn subscribe(&self, key: &StreamKey) -> Subscriber {
        if self.relay {
            self.state.hub.subscribe_relay(key)
        } else {
            self.state.hub.subscribe(key, Protocol::Rtmp)
        }
    }

    fn close_after_flush(&mut self) {
        if self.closing.is_none() {
            self.closing = Some(Instant::now() + CLOSE_FLUSH);
        }
    }

    async fn run(&mut self) -> End {
        let mut deliveries = Vec::new();
        // Futures and timers made once, not per loop turn: with thousands
        // of viewers, registering a timer or a cancellation waiter on every
        // wake-up costs more than the media.
        let shutdown = self.state.shutdown.clone();
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let mut shutting_down = false;
        // One timer for the deadline (handshake, idle, close flush), armed
        // for the deadline itself rather than ticking: a viewer's idle
        // deadline moves with every write, and a timer firing each second
        // for each of thousands of viewers kept the worker threads waking
        // all the time. When it fires early (the deadline moved on), it is
        // armed again; when the deadline moves earlier (closing), at once.
        let mut armed = self.deadline();
        let timer = tokio::time::sleep_until(armed);
        tokio::pin!(timer);
        loop {
            self.take_session_output();
            if self.closing.is_some() && self.queue.is_empty() {
                return End::Done;
            }
            let deadline = self.deadline();
            if deadline < armed {
                armed = deadline;
                timer.as_mut().reset(deadline);
            }
            let want_media = self.subscriber.is_some()
                && self.queued < MAX_QUEUED_BYTES
                && self.closing.is_none();
            let want_read = self.queued < MAX_QUEUED_BYTES && self.closing.is_none();
            tokio::select! {
                () = &mut cancelled, if !shutting_down => {
                    shutting_down = true;
                    self.on_shutdown();
                }
                r = self.socket.readable(), if want_read => {
                    if let Err(e) = r {
                        return End::Error(format!("read: {e}"));
                    }
                    if let Some(end) = READ_BUF.with_borrow_mut(|buf| self.read_some(buf)) {
                        return end;
                    }
                    if let Some(request) = self.auth_request.take() {
                        self.authorize(request).await;
                    }
                    if let Some(name) = self.vod_request.take() {
                        self.open_vod(&name).await;
                    }
                }
                r = self.socket.writable(), if !self.queue.is_empty() => {
                    if let Err(e) = r {
                        return End::Error(format!("write: {e}"));
                    }
                    if let Err(e) = self.write_queued() {
                        return e;
                    }
                }
                () = until_kicked(&mut self.kicked), if self.kicked.is_some() => {
                    self.kicked = None;
                    if let Some(p) = self.publisher.take() {
                        info!(peer = %self.peer, stream = %p.key(), "publisher disconnected (admin API, or another publisher took the stream over)");
                    }
                    return End::Done;
                }
                r = recv_media(self.subscriber.as_mut(), &mut deliveries), if want_media => {
                    if r.is_err() {
                        return End::TooSlow;
                    }
                    self.on_deliveries(&mut deliveries);
                    // The GOP burst on join is the only big batch: do not
                    // keep room for it for the life of the connection.
                    if deliveries.capacity() > 64 {
                        deliveries = Vec::new();
                    }
                    // The hub woke this viewer with a batch (see
                    // `playback.write_interval_ms`): write it now rather than on
                    // another turn of this loop.
                    self.take_session_output();
                    if !self.queue.is_empty()
                        && let Err(e) = self.write_queued()
                    {
                        return e;
                    }
                }
                t = recv_vod(self.vod.as_mut()), if self.vod.is_some() && want_read => {
                    self.on_vod_tag(t);
                }
                r = edge_ready(self.pending_play.as_mut()), if self.pending_play.is_some() => {
                    self.on_edge_ready(r);
                }
                () = &mut timer => {
                    let deadline = self.deadline();
                    armed = deadline;
                    timer.as_mut().reset(deadline);
                    if Instant::now() >= deadline {
                        return End::Timeout(if self.closing.is_some() {
                            "close flush"
                        } else if self.session.handshake_done() {
                            "idle"
                        } else {
                            "handshake"
                        });
                    }
                }
            }
        }
    }

    /// Reads what the socket has into `buf` (a per-thread buffer: most
    /// connections are viewers that read a few bytes a minute, so none of
    /// them keeps a read buffer of its own) and handles it.
    fn read_some(&mut self, buf: &mut [u8]) -> Option<End> {
        match self.socket.try_read(buf) {
            Ok(0) => Some(End::PeerClosed),
            Ok(n) => {
                self.last_activity = Instant::now();
                self.on_bytes(&buf[..n]).err()
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => Some(End::Error(format!("read: {e}"))),
        }
    }

    fn write_queued(&mut self) -> Result<(), End> {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (slot, b) in slices.iter_mut().zip(self.queue.iter()) {
            *slot = IoSlice::new(b);
            count += 1;
        }
        let sent = crate::socket_send::try_send_vectored(&self.socket, &slices[..count]);
        match sent {
            Ok(mut n) => {
                self.last_activity = Instant::now();
                self.queued -= n;
                let metrics = self.state.hub.metrics();
                match &self.subscriber {
                    Some(s) => s.add_bytes_out(n as u64),
                    None => metrics.bytes_out.add(Protocol::Rtmp, n as u64),
                }
                while n > 0 {
                    let Some(front) = self.queue.front_mut() else {
                        break;
                    };
                    if n >= front.len() {
                        n -= front.len();
                        self.queue.pop_front();
                    } else {
                        front.advance(n);
                        n = 0;
                    }
                }
                // Room for the join burst is not kept once it is written.
                if self.queue.is_empty() && self.queue.capacity() > 32 {
                    self.queue = VecDeque::new();
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(End::Error(format!("write: {e}"))),
        }
    }

    fn on_bytes(&mut self, data: &[u8]) -> Result<(), End> {
        let events = self.session.feed(data).map_err(|e| {
            let refused = &self.state.hub.metrics().refused;
            refused.count(crate::peer_limits::Refusal::RtmpMalformed);
            End::Error(e.to_string())
        })?;
        for ev in events {
            if let ServerEvent::Media(tag) = &ev
                && self.publisher.is_some()
                && !self.within_publish_cap(tag.data.len())
            {
                return Err(End::Error(
                    "publisher over limits.max_publish_bitrate".into(),
                ));
            }
            self.on_event(ev);
        }
        Ok(())
    }

    /// Counts a publisher's media bytes against the bitrate cap.
    fn within_publish_cap(&mut self, bytes: usize) -> bool {
        let now = Instant::now().into_std();
        let cap = self.state.config.limits.max_publish_bitrate;
        if cap == 0 {
            return true;
        }
        let meter = self
            .ingest
            .get_or_insert_with(|| super::ingest_rate::IngestMeter::new(cap, now));
        if meter.take(bytes, now) {
            return true;
        }
        let refused = &self.state.hub.metrics().refused;
        refused.count(crate::peer_limits::Refusal::PublishBitrate);
        info!(peer = %self.peer, stream = ?self.key.as_ref().map(ToString::to_string), cap = cap, "publisher disconnected: sending faster than limits.max_publish_bitrate");
        false
    }

    fn on_event(&mut self, ev: ServerEvent) {
        match ev {
            ServerEvent::Connect { app, relay } => {
                self.relay = relay;
                // Clients split `rtmp://h/vod/dir/file` as app `vod/dir`,
                // name `file`: keep the directory part for the file name.
                let vod_dir = app.strip_prefix("vod/").map(str::to_owned);
                if let Some(dir) = vod_dir {
                    self.session.accept_connect();
                    self.vod_dir = Some(dir);
                    self.app = Some(VOD_APP.to_owned());
                } else if self.state.config.app(&app).is_some() || app == VOD_APP {
                    self.session.accept_connect();
                    self.app = Some(app);
                } else {
                    info!(peer = %self.peer, %app, "RTMP connect refused: unknown application");
                    self.session
                        .reject_connect(&format!("unknown application {app:?}"));
                    self.close_after_flush();
                }
            }
            ServerEvent::Publish { name, query } => {
                self.auth_request = Some(AuthRequest::Publish { name, query });
            }
            ServerEvent::Play { name, query } => {
                if self.state.play_auth.is_open() {
                    self.on_play(&name);
                } else {
                    self.auth_request = Some(AuthRequest::Play { name, query });
                }
            }
            ServerEvent::Media(tag) => {
                if let Some(p) = &self.publisher {
                    p.send(tag);
                }
            }
            ServerEvent::StreamClosed => {
                if let Some(p) = self.publisher.take() {
                    info!(stream = %p.key(), "publish ended by the client");
                }
                self.subscriber = None;
            }
        }
    }

    fn key_for(&mut self, name: &str, bad_code: &str) -> Option<StreamKey> {
        let app = self.app.clone()?;
        if let Err(why) = check_name(name) {
            self.session.reject_publish(bad_code, &why);
            self.close_after_flush();
            return None;
        }
        Some(StreamKey::new(app, name))
    }

    fn on_publish(&mut self, name: &str) {
        if self.app.as_deref() == Some(VOD_APP) {
            self.session.reject_publish(
                "NetStream.Publish.BadName",
                "the vod application plays files only",
            );
            self.close_after_flush();
            return;
        }
        let Some(key) = self.key_for(name, "NetStream.Publish.BadName") else {
            return;
        };
        match self.state.hub.publish(&key) {
            Ok(p) => {
                info!(peer = %self.peer, stream = %key, "publish started");
                self.session.accept_publish(name);
                self.kicked = Some(Box::pin(p.kicked()));
                self.publisher = Some(p);
                self.key = Some(key);
            }
            Err(e) => {
                warn!(peer = %self.peer, stream = %key, reason = %e, "publish refused");
                let desc = match e {
                    PublishError::AlreadyPublishing(_) => {
                        let r = crate::auth::Reason::AlreadyPublishing;
                        self.state.hub.metrics().publish_refused_by.add(r);
                        r.describe()
                    }
                    PublishError::ShuttingDown => "server shutting down",
                };
                self.session
                    .reject_publish("NetStream.Publish.BadName", desc);
                self.close_after_flush();
            }
        }
    }

    fn on_play(&mut self, name: &str) {
        if self.app.as_deref() == Some(VOD_APP) {
            // Names like `mp4:talk.mp4` or `recordings/live/x.flv`: the VOD
            // module resolves them and keeps them inside the data directory.
            self.vod_request = Some(match &self.vod_dir {
                Some(dir) => format!("{dir}/{name}"),
                None => name.to_owned(),
            });
            return;
        }
        let Some(key) = self.key_for(name, "NetStream.Play.StreamNotFound") else {
            return;
        };
        debug!(peer = %self.peer, stream = %key, "play");
        // An edge pulls a stream it does not have before the play starts.
        if let Some(edge) = &self.state.edge
            && !self.state.hub.is_live(&key)
        {
            let (edge, k) = (edge.clone(), key.clone());
            self.pending_play = Some(PendingPlay {
                name: name.to_owned(),
                key,
                resume: false,
                ready: Box::pin(async move { edge.ensure_live(&k).await }),
            });
            return;
        }
        self.start_play(name, key);
    }

    fn start_play(&mut self, name: &str, key: StreamKey) {
        self.subscriber = Some(self.subscribe(&key));
        self.session.accept_play(name);
        self.key = Some(key);
    }

    fn on_edge_ready(&mut self, r: Result<(), crate::edge::EdgeError>) {
        let Some(p) = self.pending_play.take() else {
            return;
        };
        match r {
            Ok(()) if p.resume => {
                self.subscriber = Some(self.subscribe(&p.key));
                self.session.publish_notify(&p.name);
                self.key = Some(p.key);
            }
            Ok(()) => self.start_play(&p.name, p.key),
            Err(e) => {
                info!(peer = %self.peer, stream = %p.key, reason = %e, "play refused");
                self.session
                    .reject_play("NetStream.Play.StreamNotFound", &e.to_string());
                self.close_after_flush();
            }
        }
    }

    fn on_deliveries(&mut self, deliveries: &mut Vec<Delivery>) {
        let cs = self.chunk_size;
        let name = self
            .key
            .as_ref()
            .map(|k| k.name.clone())
            .unwrap_or_default();
        let mut ended = false;
        for d in deliveries.drain(..) {
            match d {
                Delivery::Frame(frame) => {
                    let bytes = frame
                        .rtmp_chunks(|tag| message::media_chunks(tag, cs))
                        .clone();
                    self.take_session_output();
                    self.push(bytes);
                }
                Delivery::Unpublished => {
                    self.session.unpublish_notify(&name);
                    ended = true;
                }
                Delivery::Published => {
                    self.session.publish_notify(&name);
                    ended = false;
                }
            }
        }
        // On an edge nobody republishes a relayed stream by itself: look
        // for it upstream again; if it is gone, the player is told so.
        if ended && let (Some(edge), Some(key)) = (&self.state.edge, &self.key) {
            let (edge, k) = (edge.clone(), key.clone());
            self.subscriber = None;
            self.pending_play = Some(PendingPlay {
                name,
                key: key.clone(),
                resume: true,
                ready: Box::pin(async move { edge.ensure_live(&k).await }),
            });
        }
    }

    async fn open_vod(&mut self, name: &str) {
        let roots = crate::vod::VodRoots::under(&self.state.config.data_dir);
        // An edge plays VOD files from its cache (fetched from the origin once).
        let opened = match &self.state.cache {
            Some(cache) => cache.open_rtmp(name).await,
            None => crate::vod::rtmp::open(&roots, name).await,
        };
        match opened {
            Ok(mut playback) => {
                info!(peer = %self.peer, file = %name, "VOD play");
                self.session.accept_play(name);
                self.key = Some(StreamKey::new(VOD_APP, name));
                // `next()` paces in real time and is not cancel-safe: run it
                // in its own task and take tags from a channel.
                let (tx, rx) = tokio::sync::mpsc::channel(64);
                let shutdown = self.state.shutdown.clone();
                self.state.tasks.spawn(async move {
                    loop {
                        tokio::select! {
                            t = playback.next() => match t {
                                Some(tag) => if tx.send(tag).await.is_err() { return },
                                None => return,
                            },
                            () = shutdown.cancelled() => return,
                            () = tx.closed() => return,
                        }
                    }
                });
                self.vod = Some(rx);
            }
            Err(e) => {
                info!(peer = %self.peer, file = %name, reason = %e, "VOD play refused");
                self.session
                    .reject_play("NetStream.Play.StreamNotFound", &format!("{name}: {e}"));
                self.close_after_flush();
            }
        }
    }

    fn on_vod_tag(&mut self, tag: Option<crate::media::Tag>) {
        if let Some(tag) = tag {
            let bytes = message::media_chunks(&tag, self.chunk_size);
            self.take_session_output();
            self.push(bytes);
        } else {
            self.vod = None;
            let name = self
                .key
                .as_ref()
                .map(|k| k.name.clone())
                .unwrap_or_default();
            self.session.play_stop(&name);
            self.close_after_flush();
        }
    }

    fn on_shutdown(&mut self) {
        let name = self
            .key
            .as_ref()
            .map(|k| k.name.clone())
            .unwrap_or_default();
        if self.publisher.take().is_some() {
            // Dropping the publisher ends the publication: recorders and
            // segmenters see it end and finish their files.
            self.session.unpublish_success(&name);
        }
        if self.subscriber.take().is_some() {
            self.session.unpublish_notify(&name);
        }
        self.close_after_flush();
    }
}

/// Resolves when the admin API kicked this connection's publisher.
async fn until_kicked(
    kicked: &mut Option<std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>>,
) {
    match kicked {
        Some(k) => k.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn recv_media(
    sub: Option<&mut Subscriber>,
    out: &mut Vec<Delivery>,
) -> Result<(), crate::hub::SubscriberClosed> {
    match sub {
        Some(s) => s.recv(out, 1024).await,
        None => std::future::pending().await,
    }
}

async fn edge_ready(p: Option<&mut PendingPlay>) -> Result<(), crate::edge::EdgeError> {
    match p {
        Some(p) => p.ready.as_mut().await,
        None => std::future::pending().await,
    }
}

async fn recv_vod(
    rx: Option<&mut tokio::sync::mpsc::Receiver<crate::media::Tag>>,
) -> Option<crate::media::Tag> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
