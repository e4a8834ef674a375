//! The admin listener: `/api/*` and `/metrics` only there (the public port
//! answers 404), and `DELETE /api/streams/APP/NAME` only with the Bearer
//! token of `admin.token_file`, which is read again after a rotation.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "support/http_client.rs"]
mod http_client;

use std::path::Path;
use std::time::Duration;

use common::{Server, TempDir, publish, stream_of, wait_bounded};
use http_client::{get, request};

/// Writes `token` the way Kubernetes updates a mounted Secret: a new file
/// moved over the old one, never a half-written file.
fn write_token(path: &Path, token: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{token}\n")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn delete(server: &Server, path: &str, token: Option<&str>) -> http_client::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request(server.admin, "DELETE", path, &headers)
}

#[test]
fn the_api_and_metrics_are_on_the_admin_port_only() {
    let server = Server::start();
    for path in ["/api/streams", "/api/stats", "/metrics"] {
        assert_eq!(get(server.http, path).status, 404, "public {path}");
        let r = get(server.admin, path);
        assert_eq!(r.status, 200, "admin {path}: {}", r.text());
    }
    assert!(
        get(server.admin, "/metrics")
            .text()
            .contains("fleetcast_media_connections_accepted_total"),
        "admin /metrics is the Prometheus text"
    );
    let streams: serde_json::Value =
        serde_json::from_slice(&get(server.admin, "/api/streams").body).unwrap();
    assert_eq!(streams["role"], "origin");
    for addr in [server.http, server.admin] {
        assert_eq!(get(addr, "/healthz").status, 200);
        assert_eq!(get(addr, "/readyz").status, 200);
    }
    // Nothing that changes a stream is reachable on the public port.
    assert_eq!(
        request(server.http, "DELETE", "/api/streams/live/cam", &[]).status,
        404
    );
}

#[test]
fn without_a_token_file_mutating_requests_are_forbidden() {
    let server = Server::start();
    let mut publisher = publish(&server.rtmp_url("live", "cam"), 60);
    server.wait_live("live", "cam");
    let r = delete(&server, "/api/streams/live/cam", Some("anything"));
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "no admin token configured\n");
    assert!(stream_of(&server.streams(), "live", "cam").is_some());
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn the_token_disconnects_a_publisher_and_wrong_tokens_are_refused() {
    let dir = TempDir::new("admin-token");
    let token = dir.0.join("token");
    write_token(&token, "s3cret-admin");
    let server = Server::start_with_token(&token, &[]);
    let mut publisher = publish(&server.rtmp_url("live", "cam"), 120);
    server.wait_live("live", "cam");

    let missing = delete(&server, "/api/streams/live/cam", None);
    assert_eq!(missing.status, 401);
    assert!(
        missing
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{:?}",
        missing.headers
    );
    let wrong = delete(&server, "/api/streams/live/cam", Some("s3cret-admin2"));
    assert_eq!(wrong.status, 401);
    assert!(
        wrong
            .header("www-authenticate")
            .is_some_and(|v| v.contains("invalid_token"))
    );
    assert!(stream_of(&server.streams(), "live", "cam").is_some());
    assert_eq!(
        delete(&server, "/api/streams/live/nobody", Some("s3cret-admin")).status,
        404
    );

    let ok = delete(&server, "/api/streams/live/cam", Some("s3cret-admin"));
    assert_eq!(ok.status, 204, "{}", ok.text());
    // The publisher's connection is closed: ffmpeg gives up long before
    // its 120 s, and the stream is gone.
    let status = wait_bounded(
        &mut publisher,
        Duration::from_secs(30),
        "ffmpeg after its publish was deleted",
    );
    assert!(!status.success(), "ffmpeg reports the lost connection");
    server.wait_streams("live/cam to end", |s| stream_of(s, "live", "cam").is_none());
    assert_eq!(
        delete(&server, "/api/streams/live/cam", Some("s3cret-admin")).status,
        404
    );
}

#[test]
fn a_rotated_token_takes_effect_without_a_restart() {
    let dir = TempDir::new("admin-rotate");
    let token = dir.0.join("token");
    write_token(&token, "first");
    let server = Server::start_with_token(&token, &[]);
    let mut publisher = publish(&server.rtmp_url("live", "rot"), 120);
    server.wait_live("live", "rot");
    // An absent stream answers 404 once the token is accepted: a cheap probe.
    assert_eq!(
        delete(&server, "/api/streams/live/x", Some("first")).status,
        404
    );

    write_token(&token, "second");
    assert_eq!(
        delete(&server, "/api/streams/live/rot", Some("first")).status,
        401,
        "the old token stops working at once"
    );
    assert_eq!(
        delete(&server, "/api/streams/live/rot", Some("second")).status,
        204
    );
    wait_bounded(
        &mut publisher,
        Duration::from_secs(30),
        "ffmpeg after delete",
    );

    std::fs::remove_file(&token).unwrap();
    let gone = delete(&server, "/api/streams/live/rot", Some("second"));
    assert_eq!(gone.status, 403, "an unreadable token file refuses");
    assert!(gone.text().contains("unreadable"), "{}", gone.text());
}

/// Reads until the server closes, returning what it sent; panics if it
/// keeps the connection open past the read timeout.
fn read_to_close(s: &mut std::net::TcpStream) -> String {
    String::from_utf8_lossy(&common::read_until_closed(s, "the admin port")).into_owned()
}

#[test]
fn the_admin_port_bounds_heads_idle_connections_and_connections_per_address() {
    use std::io::{Read as _, Write as _};
    use std::net::TcpStream;
    // Found in review: the admin listener had none of the public port's
    // head bounds, idle close or per-address limit.
    let server = Server::start_with(&["limits: { http_head_timeout_secs: 2 }"]);
    let connect = || {
        let s = TcpStream::connect(server.admin).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s
    };
    // Slowloris: one byte every 250 ms (this head would take 10 s); bounded.
    let mut s = connect();
    s.set_nonblocking(true).unwrap();
    let trickle = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaa\r\n\r\n";
    let mut answer = Vec::new();
    for b in trickle {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) | Err(_) if !answer.is_empty() => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    s.set_nonblocking(false).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned() + &read_to_close(&mut s);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    // An oversized head: 431.
    let mut s = connect();
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(64 * 1024));
    let _ = s.write_all(big.as_bytes());
    let answer = read_to_close(&mut s);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // The admin port's own per-address limit: 32 connections, each
    // proven served, then the next one is closed unanswered.
    let mut held = Vec::new();
    for _ in 0..32 {
        let mut s = connect();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let mut s = connect();
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(read_to_close(&mut s), "", "a 33rd connection was served");
    drop(held);
    // The public port is not affected by the admin port's budget.
    assert_eq!(http_client::get(server.http, "/healthz").status, 200);
}
