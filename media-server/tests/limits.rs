//! Limits of the RTMP listener, in process with tokio's paused clock: real
//! loopback sockets, virtual time, so timeouts are tested without waiting.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use fleetcast_media::config::Config;
use fleetcast_media::rtmp::handshake::{ClientHandshake, PACKET_LEN};
use fleetcast_media::server::{self, AppState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

struct Running {
    rtmp: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _data: std::path::PathBuf,
}

async fn start(edit: impl FnOnce(&mut Config)) -> Running {
    let data = std::env::temp_dir().join(format!(
        "fleetcast-limits-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut config = Config::default();
    config.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir.clone_from(&data);
    edit(&mut config);
    config.validate().unwrap();
    let listeners = server::bind(&config).await.unwrap();
    let rtmp = listeners.rtmp.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let state = AppState::new(config, shutdown.clone());
    let task = tokio::spawn(server::run(listeners, state));
    Running {
        rtmp,
        shutdown,
        task,
        _data: data,
    }
}

/// True when the server closed the socket.
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

async fn handshake(s: &mut TcpStream) {
    let mut out = BytesMut::new();
    let mut hs = ClientHandshake::start(&mut out, 3);
    s.write_all(&out).await.unwrap();
    let mut input = BytesMut::zeroed(1 + 2 * PACKET_LEN);
    s.read_exact(&mut input).await.unwrap();
    let mut c2 = BytesMut::new();
    assert!(hs.feed(&mut input, &mut c2).unwrap());
    s.write_all(&c2).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_at_the_handshake_timeout() {
    let server = start(|c| c.limits.handshake_timeout_secs = 5).await;
    let mut s = TcpStream::connect(server.rtmp).await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(closed(&mut s).await);
    assert!(started.elapsed() >= Duration::from_secs(5));
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_at_the_idle_timeout() {
    let server = start(|c| c.limits.idle_timeout_secs = 30).await;
    let mut s = TcpStream::connect(server.rtmp).await.unwrap();
    handshake(&mut s).await;
    let started = tokio::time::Instant::now();
    assert!(closed(&mut s).await);
    assert!(started.elapsed() >= Duration::from_secs(30));
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn connections_over_the_limit_wait_for_a_free_slot() {
    let server = start(|c| c.limits.max_connections = 2).await;
    let mut a = TcpStream::connect(server.rtmp).await.unwrap();
    handshake(&mut a).await;
    let mut b = TcpStream::connect(server.rtmp).await.unwrap();
    handshake(&mut b).await;
    // The kernel completes the TCP connect, but the server does not accept it.
    let mut c = TcpStream::connect(server.rtmp).await.unwrap();
    let mut out = BytesMut::new();
    let _hs = ClientHandshake::start(&mut out, 4);
    c.write_all(&out).await.unwrap();
    let mut first = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_secs(3), c.read_exact(&mut first)).await;
    assert!(
        waited.is_err(),
        "a third connection was served over the limit"
    );
    // A slot frees up: the third is served.
    drop(a);
    c.read_exact(&mut first).await.unwrap();
    assert_eq!(first[0], 3);
    drop((b, c));
    server.shutdown.cancel();
    server.task.await.unwrap().unwrap();
}
