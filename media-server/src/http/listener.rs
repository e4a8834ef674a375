//! The HTTP listener: holds a connection permit per accepted socket (the
//! shared `limits.max_connections`) and a slot of its address's
//! `limits.max_connections_per_ip` (over it: closed at accept), counts
//! connections, and closes a connection whose writes make no progress for
//! the idle timeout (a viewer that stopped reading an endless HTTP-FLV
//! response). Request heads are bounded in size (431) and in the time they
//! take to arrive (408, slowloris), and a connection with no request and
//! no byte either way for the idle timeout is closed, as is one whose
//! announced request body makes no progress for the idle timeout.

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

use super::request_head::{HeadScan, Phase, Scan};
use crate::hub::Metrics;
use crate::peer_limits::{IpSlot, PerIpLimit, Refusal};

/// Bounds on request heads (see `limits.max_http_head_bytes`,
/// `limits.http_head_timeout_secs`).
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Largest head, bytes.
    pub max_bytes: usize,
    /// Time a head may take from its first byte (or the connect) to its end.
    pub timeout: Duration,
}

/// The peer address of an HTTP request: extract it with
/// `axum::extract::ConnectInfo<ClientAddr>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// A listener that admits at most the permits of a semaphore.
#[derive(Debug)]
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    write_stall: Duration,
    per_ip: Option<Arc<PerIpLimit>>,
    heads: Option<HeadLimits>,
}

impl LimitedListener {
    /// Wraps a bound listener.
    pub fn new(
        inner: TcpListener,
        permits: Arc<Semaphore>,
        metrics: Arc<Metrics>,
        write_stall: Duration,
    ) -> Self {
        Self {
            inner,
            permits,
            metrics,
            write_stall,
            per_ip: None,
            heads: None,
        }
    }

    /// Closes connections over their address's limit at accept.
    #[must_use]
    pub fn per_ip(mut self, limit: Arc<PerIpLimit>) -> Self {
        self.per_ip = Some(limit);
        self
    }

    /// Bounds request heads in size and time; a connection idle (no byte
    /// either way) between requests for the write-stall time is closed.
    #[must_use]
    pub fn request_heads(mut self, limits: HeadLimits) -> Self {
        self.heads = Some(limits);
        self
    }

    /// A slot for `addr`, or `None` (logged, counted) when it holds its limit.
    fn slot(&self, addr: SocketAddr) -> Result<Option<IpSlot>, ()> {
        let Some(limit) = &self.per_ip else {
            return Ok(None);
        };
        if let Some(slot) = limit.try_acquire(addr.ip()) {
            return Ok(Some(slot));
        }
        self.metrics.refused.count(Refusal::PerIpLimit);
        if limit.log_due() {
            warn!(peer = %addr, "HTTP connection refused: too many connections from this address (logged once a second, all counted)");
        }
        Err(())
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        {
            loop {
                let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                    // The semaphore is never closed; wait forever rather than spin.
                    std::future::pending::<()>().await;
                    continue;
                };
                match self.inner.accept().await {
                    Ok((socket, addr)) => {
                        let Ok(slot) = self.slot(addr) else {
                            continue;
                        };
                        let _ = socket.set_nodelay(true);
                        self.metrics
                            .http_connections
                            .fetch_add(1, Ordering::Relaxed);
                        self.metrics
                            .http_connections_total
                            .fetch_add(1, Ordering::Relaxed);
                        return (
                            LimitedStream {
                                socket,
                                peer: addr,
                                _permit: permit,
                                _slot: slot,
                                metrics: Arc::clone(&self.metrics),
                                write_stall: self.write_stall,
                                stall: None,
                                heads: self.heads.map(|limits| HeadWatch {
                                    limits,
                                    scan: HeadScan::new(limits.max_bytes),
                                    timer: Box::pin(tokio::time::sleep(limits.timeout)),
                                    last_write: Instant::now(),
                                }),
                            },
                            addr,
                        );
                    }
                    Err(e) => {
                        warn!(error = %e, "HTTP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl Connected<IncomingStream<'_, LimitedListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, LimitedListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// An accepted HTTP connection.
#[derive(Debug)]
pub struct LimitedStream {
    socket: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    _slot: Option<IpSlot>,
    metrics: Arc<Metrics>,
    write_stall: Duration,
    stall: Option<Pin<Box<Sleep>>>,
    heads: Option<HeadWatch>,
}

/// Request-head watch of one connection.
#[derive(Debug)]
struct HeadWatch {
    limits: HeadLimits,
    scan: HeadScan,
    /// In a head: its deadline. Between requests: the idle deadline.
    timer: Pin<Box<Sleep>>,
    last_write: Instant,
}

impl Drop for LimitedStream {
    fn drop(&mut self) {
        self.metrics
            .http_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl LimitedStream {
    /// On a pending write: arm (or check) the stall timer.
    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let limit = self.write_stall;
        let timer = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        timer.as_mut().poll(cx).is_ready()
    }

    /// Applies the stall rule to a write's outcome: a write still pending
    /// after the stall limit fails; any progress disarms the timer.
    fn watch_write(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match poll {
            Poll::Pending if self.stalled(cx) => Poll::Ready(Err(stall_error())),
            Poll::Pending => Poll::Pending,
            ready @ Poll::Ready(_) => {
                self.stall = None;
                if let Some(h) = &mut self.heads {
                    h.last_write = Instant::now();
                }
                ready
            }
        }
    }

    /// Answers `status` (best effort, the socket is being dropped) and
    /// fails the read so hyper closes the connection.
    fn refuse(&mut self, status: &str, reason: Refusal) -> io::Error {
        let answer = format!("HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
        let _ = self.socket.try_write(answer.as_bytes());
        self.metrics.refused.count(reason);
        io::Error::new(io::ErrorKind::InvalidData, status.to_owned())
    }

    /// Applies the head watch to the bytes a read brought (`new`).
    fn watch_read(&mut self, new: &[u8]) -> io::Result<()> {
        let Some(h) = &mut self.heads else {
            return Ok(());
        };
        let before = h.scan.phase();
        match h.scan.feed(new) {
            Scan::TooLarge => {
                let len = h.scan.head_len();
                let max = h.limits.max_bytes;
                info!(peer = %self.peer, max, "HTTP request refused: head over {len} bytes");
                Err(self.refuse(
                    "431 Request Header Fields Too Large",
                    Refusal::HttpHeadTooLarge,
                ))
            }
            Scan::Phase { phase, started } => {
                let now = Instant::now();
                if phase == Phase::Head && started {
                    h.timer.as_mut().reset(now + h.limits.timeout);
                } else if (phase == Phase::BetweenRequests && before != Phase::BetweenRequests)
                    || (phase == Phase::Unwatched && !new.is_empty())
                {
                    // Between requests: idle from the head's end. With a
                    // body announced: idle from the last byte read, so a
                    // body that stops coming frees the slot.
                    h.timer.as_mut().reset(now + self.write_stall);
                }
                Ok(())
            }
        }
    }

    /// On a pending read: has the head (or idle) deadline passed?
    fn watch_pending_read(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let stall = self.write_stall;
        let h = self.heads.as_mut()?;
        let phase = h.scan.phase();
        if phase != Phase::Head {
            // Writes (a long response) keep the connection alive.
            let due = h.last_write + stall;
            if h.timer.deadline() < due {
                h.timer.as_mut().reset(due);
            }
        }
        if h.timer.as_mut().poll(cx).is_pending() {
            return None;
        }
        let (secs, len) = (h.limits.timeout.as_secs(), h.scan.head_len());
        if phase == Phase::Head {
            info!(peer = %self.peer, bytes = len, "HTTP request refused: head not complete within {secs} s");
            Some(self.refuse("408 Request Timeout", Refusal::HttpHeadTimeout))
        } else if phase == Phase::Unwatched {
            debug!(peer = %self.peer, "HTTP connection closed: no byte of the announced body for the idle timeout");
            Some(io::Error::new(io::ErrorKind::TimedOut, "request body idle"))
        } else {
            debug!(peer = %self.peer, "HTTP connection closed: idle between requests");
            Some(io::Error::new(
                io::ErrorKind::TimedOut,
                "idle between requests",
            ))
        }
    }
}

fn stall_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading")
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.socket).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let this = &mut *self;
                Poll::Ready(this.watch_read(&buf.filled()[before..]))
            }
            Poll::Pending => match self.watch_pending_read(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
            err @ Poll::Ready(Err(_)) => err,
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.socket).poll_write(cx, buf);
        self.watch_write(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = crate::socket_send::poll_send_vectored(&self.socket, cx, bufs);
        self.watch_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}
