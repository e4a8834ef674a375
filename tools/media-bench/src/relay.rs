//! A one-connection loopback TCP relay in front of a server, noting when the
//! first byte passes: the publisher's first byte is where
//! publish-to-first-frame starts, so ffmpeg's own start-up is not counted.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A relay listening on a loopback port.
#[derive(Debug)]
pub struct Relay {
    /// Where the publisher should connect.
    pub addr: SocketAddr,
    /// Fires with the instant the client's first byte arrived.
    pub first_byte: oneshot::Receiver<Instant>,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays the first connection accepted to `upstream`.
pub async fn start(upstream: SocketAddr) -> Result<Relay> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind relay")?;
    let addr = listener.local_addr().context("relay address")?;
    let (tx, first_byte) = oneshot::channel();
    let task = tokio::spawn(async move {
        if let Err(e) = relay(listener, upstream, tx).await {
            eprintln!("   publisher relay: {e:#}");
        }
    });
    Ok(Relay {
        addr,
        first_byte,
        task,
    })
}

async fn relay(
    listener: TcpListener,
    upstream: SocketAddr,
    tx: oneshot::Sender<Instant>,
) -> Result<()> {
    let (mut client, _) = listener.accept().await.context("accept publisher")?;
    let mut first = [0u8; 4096];
    let n = client.read(&mut first).await.context("read publisher")?;
    let _ = tx.send(Instant::now());
    let mut server = TcpStream::connect(upstream)
        .await
        .context("connect server")?;
    client.set_nodelay(true).context("nodelay")?;
    server.set_nodelay(true).context("nodelay")?;
    server
        .write_all(&first[..n])
        .await
        .context("write server")?;
    // Ends when either side closes; errors then are the normal end of a run.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn relays_both_ways_and_notes_first_byte() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(&buf[..n]).await.unwrap();
        });
        let relay = start(echo_addr).await.unwrap();
        let before = Instant::now();
        let mut c = TcpStream::connect(relay.addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        let mut relay = relay;
        assert!((&mut relay.first_byte).await.unwrap() >= before);
    }
}
