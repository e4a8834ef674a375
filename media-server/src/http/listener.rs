//! The HTTP listener: holds a connection permit per accepted socket (the
//! shared `limits.max_connections`), counts connections, and closes a
//! connection whose writes make no progress for the idle timeout (a viewer
//! that stopped reading an endless HTTP-FLV response).

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
use tokio::time::Sleep;
use tracing::warn;

use crate::hub::Metrics;

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
        }
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
                                _permit: permit,
                                metrics: Arc::clone(&self.metrics),
                                write_stall: self.write_stall,
                                stall: None,
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
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
    write_stall: Duration,
    stall: Option<Pin<Box<Sleep>>>,
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
                ready
            }
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
        Pin::new(&mut self.socket).poll_read(cx, buf)
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
        let poll = Pin::new(&mut self.socket).poll_write_vectored(cx, bufs);
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
