//! Publish and play authorization with real clients on loopback: ffmpeg
//! publishing with and without keys (a key directory laid out as a mounted
//! Kubernetes Secret, rotated under the running server), a publish
//! webhook served by a small tokio HTTP server in the test, takeover, and
//! signed playback URLs (made by the `sign-url` command) checked with
//! ffprobe and curl for RTMP, HTTP-FLV, HLS and VOD, on an origin and
//! through an edge.
// Counters are integers in f64: exact comparison is right.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::too_many_lines,
    clippy::float_cmp
)]

mod common;
mod edge_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    Server, TempDir, finish_probe, make_mp4, metric, output_bounded, parse_metrics, publish,
    require, spawn_probe, wait_bounded,
};
use fleetcast_media::auth::signing::{self, Binding};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "test-signing-secret";

/// Lays out `dir` as the kubelet mounts a Secret: the files live in a
/// timestamped directory, `..data` points at it, and each key name is a
/// symlink through `..data`. Called again, it swaps `..data` atomically.
fn write_secret_mount(dir: &Path, files: &[(&str, &str)], version: u32) {
    let real = dir.join(format!("..2026_11_27_{version}"));
    std::fs::create_dir_all(&real).unwrap();
    for (name, content) in files {
        std::fs::write(real.join(name), content).unwrap();
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(real.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

/// Publishes the test pattern for `secs` s to `url`; true when ffmpeg succeeded.
fn publish_ok(url: &str, secs: u32) -> bool {
    let out = output_bounded(publish(url, secs), Duration::from_mins(1), "ffmpeg publish");
    out.status.success()
}

fn refused_metric(server: &Server, family: &str, reason: &str) -> f64 {
    let samples = parse_metrics(&server.admin_get("/metrics").1);
    metric(
        &samples,
        &format!("fleetcast_media_{family}_refused_total{{reason=\"{reason}\"}}"),
    )
}

/// Polls `f` until it holds (bounded), failing with `what` and the log.
fn wait_for(server: &Server, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn publish_keys_from_a_secret_mount_rotate_without_restart() {
    let keys = TempDir::new("publish-keys");
    write_secret_mount(&keys.0, &[("live.cam", "first-key-1111\n")], 1);
    let server = Server::start_with(&[&format!(
        "auth: {{ publish_keys_dir: \"{}\" }}",
        keys.0.display()
    )]);
    let url = |key: &str| format!("{}?key={key}", server.rtmp_url("live", "cam"));

    assert!(
        !publish_ok(&server.rtmp_url("live", "cam"), 2),
        "a publisher without a key must be refused"
    );
    assert!(!publish_ok(&url("wrong-key-9999"), 2));
    assert!(
        !publish_ok(
            &format!("{}?key=first-key-1111", server.rtmp_url("live", "other")),
            2
        ),
        "a stream without a key file must be refused"
    );
    assert!(publish_ok(&url("first-key-1111"), 2), "{}", server.log());

    // Rotation: both keys for a while, then only the new one.
    write_secret_mount(
        &keys.0,
        &[("live.cam", "first-key-1111\nsecond-key-2222\n")],
        2,
    );
    // Keys are read again at most once a second, on the next publish.
    wait_for(&server, "the added key to be accepted", || {
        publish_ok(&url("second-key-2222"), 1)
    });
    server.expect_log("publish keys directory changed");
    write_secret_mount(&keys.0, &[("live.cam", "second-key-2222\n")], 3);
    wait_for(&server, "the removed key to be refused", || {
        !publish_ok(&url("first-key-1111"), 1)
    });
    assert!(publish_ok(&url("second-key-2222"), 2), "{}", server.log());

    assert!(refused_metric(&server, "publish", "bad_key") >= 3.0);
    assert_eq!(refused_metric(&server, "publish", "no_key"), 1.0);
    let log = server.log();
    assert!(log.contains("publish refused"), "{log}");
    assert!(
        log.contains("reason=bad_key") || log.contains("reason=\"bad_key\""),
        "{log}"
    );
    for key in ["first-key-1111", "second-key-2222", "wrong-key-9999"] {
        assert!(!log.contains(key), "a key reached the log: {key}\n{log}");
    }
}

/// What the test's webhook received.
type Calls = Arc<Mutex<Vec<serde_json::Value>>>;

/// A tiny HTTP/1.1 server answering every `POST` with `decide(body)`:
/// (status, body). It runs until the returned runtime is dropped.
fn start_webhook(
    decide: fn(&serde_json::Value) -> (u16, &'static str),
) -> (tokio::runtime::Runtime, String, Calls) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let calls: Calls = Arc::default();
    let calls2 = Arc::clone(&calls);
    rt.spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let calls = Arc::clone(&calls2);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, len) = loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body: serde_json::Value =
                    serde_json::from_slice(&buf[head_end..head_end + len]).unwrap();
                let (status, text) = decide(&body);
                calls.lock().unwrap().push(body);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = s.write_all(response.as_bytes()).await;
            });
        }
    });
    (rt, url, calls)
}

#[test]
fn publish_webhook_allows_denies_with_its_reason_and_fails_closed() {
    let (rt, hook, calls) = start_webhook(|body| {
        if body["query"]["key"] == "good" {
            (200, "")
        } else {
            (403, "stream key revoked for this channel\nsecond line")
        }
    });
    let server = Server::start_with(&[&format!(
        "auth: {{ publish_webhook: {{ url: \"{hook}\", timeout_ms: 2000 }} }}"
    )]);
    let base = server.rtmp_url("live", "cam");
    assert!(
        publish_ok(&format!("{base}?key=good"), 2),
        "{}",
        server.log()
    );
    assert!(!publish_ok(&format!("{base}?key=bad"), 2));
    {
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 2, "{calls:?}");
        let first = &calls[0];
        assert_eq!(first["action"], "publish");
        assert_eq!(first["app"], "live");
        assert_eq!(first["name"], "cam");
        assert_eq!(first["query"]["key"], "good");
        assert_eq!(first["server"]["role"], "origin");
        assert!(first["client_addr"].as_str().unwrap().starts_with("127."));
    }
    let log = server.log();
    assert!(log.contains("stream key revoked for this channel"), "{log}");
    assert!(!log.contains("second line"), "{log}");
    assert_eq!(refused_metric(&server, "publish", "webhook_denied"), 1.0);

    // The webhook goes away: publishers are refused (fail closed).
    drop(rt);
    assert!(!publish_ok(&format!("{base}?key=good"), 2));
    assert_eq!(
        refused_metric(&server, "publish", "webhook_unreachable"),
        1.0
    );
}

#[test]
fn an_edge_refuses_every_publish_and_its_viewers_get_the_origins_stream() {
    require("ffmpeg");
    let origin = Server::start();
    let (edge, _cache) = edge_common::start_edge(&edge_common::urls_of(&origin), 30, &[]);
    // Before any viewer made the edge pull `live/cam`, someone publishes it
    // to the edge's public RTMP port: refused, with no auth configured.
    let edge_url = edge.rtmp_url("live", "cam");
    assert!(
        !publish_ok(&edge_url, 3),
        "a publish to an edge must be refused\n{}",
        edge.log()
    );
    assert!(
        edge.log()
            .contains("this is an edge: publish to the origins' ingest"),
        "{}",
        edge.log()
    );
    assert_eq!(refused_metric(&edge, "publish", "edge_role"), 1.0);
    assert!(common::stream_of(&edge.streams(), "live", "cam").is_none());

    // The real publisher on the origin; a viewer on the edge gets its stream
    // through the edge's pull.
    let mut publisher = publish(&origin.rtmp_url("live", "cam"), 8);
    origin.wait_live("live", "cam");
    let p = finish_probe(spawn_probe(&edge_url), "viewer on the edge");
    assert!(p.video_packets >= 30, "{p:?}\n{}", edge.log());
    assert_eq!(
        edge_common::metric_u64(&edge, "fleetcast_edge_pulls_opened_total"),
        1
    );
    assert!(wait_bounded(&mut publisher, Duration::from_mins(1), "publisher").success());
}

#[test]
fn takeover_replaces_the_first_publisher_when_allowed() {
    let server = Server::start_with(&["auth: { allow_takeover: true }"]);
    let url = server.rtmp_url("live", "cam");
    let mut first = publish(&url, 60);
    server.wait_live("live", "cam");
    assert!(
        publish_ok(&url, 3),
        "the second publisher must be accepted\n{}",
        server.log()
    );
    // The first publisher's connection was closed: ffmpeg fails long
    // before its 60 s (the bound is only a safety net).
    let status = wait_bounded(&mut first, Duration::from_secs(50), "first publisher");
    assert!(
        !status.success(),
        "the first publisher must have been cut off"
    );
    server.expect_log("takes the stream over");
}

/// `fleetcast-media sign-url` for `url`.
fn sign_url(secret_file: &Path, ttl: u64, url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetcast-media"))
        .arg("sign-url")
        .arg("--secret-file")
        .arg(secret_file)
        .args(["--ttl-secs", &ttl.to_string(), url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `curl` GET: (status, body).
fn curl(url: &str) -> (u16, String) {
    require("curl");
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            url,
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

/// A URL for `resource` signed with [`SECRET`] but expired a minute ago.
fn expired(url: &str, resource: &str) -> String {
    let past = fleetcast_media::auth::unix_now() - 60;
    let q = signing::query(SECRET.as_bytes(), resource, past, Binding::None);
    format!("{url}?{q}")
}

/// Flips one character of the token.
fn tampered(signed: &str) -> String {
    let i = signed.find("token=").unwrap() + "token=".len();
    let mut s = signed.to_owned();
    let c = if &s[i..=i] == "A" { "B" } else { "A" };
    s.replace_range(i..=i, c);
    s
}

fn secret_file(dir: &TempDir) -> std::path::PathBuf {
    let p = dir.0.join("play-secret");
    std::fs::write(&p, format!("{SECRET}\n")).unwrap();
    p
}

#[test]
fn signed_urls_guard_rtmp_flv_hls_and_vod_on_an_origin() {
    let dir = TempDir::new("play-signing");
    let secret = secret_file(&dir);
    let server = Server::start_with(&[
        &format!(
            "auth: {{ play_signing_secret_file: \"{}\" }}",
            secret.display()
        ),
        "hls: { segment_duration_secs: 1 }",
    ]);
    make_mp4(&server.data.0.join("vod/talk.mp4"), true);
    let mut publisher = publish(&server.rtmp_url("live", "cam"), 12);
    server.wait_live("live", "cam");

    // HTTP-FLV.
    let flv = server.flv_url("live", "cam");
    let signed_flv = sign_url(&secret, 300, &flv);
    let probe = spawn_probe(&signed_flv);
    let (status, body) = curl(&flv);
    assert_eq!(
        (status, body.trim()),
        (403, "signed URL required (expires and token missing)")
    );
    let (status, body) = curl(&expired(&flv, "live/cam"));
    assert_eq!((status, body.trim()), (403, "signed URL expired"));
    let (status, body) = curl(&tampered(&signed_flv));
    assert_eq!((status, body.trim()), (403, "invalid token"));
    let other = sign_url(&secret, 300, &server.flv_url("live", "other"));
    let wrong_stream = format!("{flv}?{}", other.split_once('?').unwrap().1);
    assert_eq!(curl(&wrong_stream).0, 403);

    // RTMP live.
    let rtmp = server.rtmp_url("live", "cam");
    let rtmp_probe = spawn_probe(&sign_url(&secret, 300, &rtmp));
    let unsigned = output_bounded(spawn_probe(&rtmp), Duration::from_mins(1), "unsigned RTMP");
    assert!(
        !unsigned.status.success(),
        "an unsigned RTMP play must be refused"
    );

    // HLS: the playlist hands its query to every segment URI.
    let playlist = format!("http://{}/live/cam/index.m3u8", server.http);
    let signed_playlist = sign_url(&secret, 300, &playlist);
    let query = signed_playlist.split_once('?').unwrap().1.to_owned();
    let mut text = String::new();
    wait_for(&server, "a playlist with segments", || {
        let (status, body) = curl(&signed_playlist);
        let has = status == 200 && body.contains(".ts?");
        if has {
            text = body;
        }
        has
    });
    let segment = text
        .lines()
        .find(|l| l.starts_with("seg-"))
        .unwrap()
        .to_owned();
    assert!(segment.ends_with(&format!("?{query}")), "{text}");
    let name = segment.split('?').next().unwrap();
    assert!(
        name.strip_prefix("seg-")
            .and_then(|n| n.strip_suffix(".ts"))
            .is_some(),
        "segment names stay as they are: {name}"
    );
    let seg_base = format!("http://{}/live/cam/{name}", server.http);
    assert_eq!(curl(&format!("{seg_base}?{query}")).0, 200);
    assert_eq!(curl(&seg_base).0, 403);
    assert_eq!(curl(&playlist).0, 403);
    let hls_probe = spawn_probe(&signed_playlist);

    // VOD over HTTP and RTMP.
    let vod = format!("http://{}/vod/talk.mp4", server.http);
    let (status, body) = curl(&sign_url(&secret, 300, &vod));
    assert_eq!(status, 200);
    assert!(body.len() > 10_000);
    assert_eq!(curl(&vod).0, 403);
    assert_eq!(curl(&expired(&vod, "vod/talk.mp4")).0, 403);
    let rtmp_vod = format!("rtmp://{}/vod/mp4:talk.mp4", server.rtmp);
    let p = finish_probe(
        spawn_probe(&sign_url(&secret, 300, &rtmp_vod)),
        "signed RTMP VOD",
    );
    assert!(p.video_packets >= 60, "{p:?}");
    let unsigned = output_bounded(spawn_probe(&rtmp_vod), Duration::from_mins(1), "RTMP VOD");
    assert!(!unsigned.status.success());

    assert!(wait_bounded(&mut publisher, Duration::from_mins(1), "publisher").success());
    for (probe, what) in [(probe, "FLV"), (rtmp_probe, "RTMP"), (hls_probe, "HLS")] {
        let p = finish_probe(probe, what);
        assert_eq!(p.video_codec, "h264", "{what}");
        assert!(p.video_packets >= 30, "{what}: {p:?}");
    }

    let missing = refused_metric(&server, "play", "missing_token");
    assert!(missing >= 6.0, "{missing}");
    assert_eq!(refused_metric(&server, "play", "expired"), 2.0);
    assert_eq!(refused_metric(&server, "play", "bad_token"), 2.0);
    let log = server.log();
    assert!(log.contains("play refused"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
}

#[test]
fn a_signed_viewer_plays_through_an_edge_and_an_unsigned_one_is_refused() {
    let dir = TempDir::new("edge-signing");
    let secret = secret_file(&dir);
    let auth = format!(
        "auth: {{ play_signing_secret_file: \"{}\" }}",
        secret.display()
    );
    let origin = Server::start_with(&[&auth]);
    make_mp4(&origin.data.0.join("vod/clip.mp4"), true);
    // The edge has the secret too: it verifies viewers and signs its own
    // upstream requests (an unindented line ends the `edge:` block).
    let (edge, _cache) = edge_common::start_edge(&edge_common::urls_of(&origin), 30, &[&auth]);

    let mut publisher = publish(&origin.rtmp_url("live", "cam"), 10);
    origin.wait_live("live", "cam");
    let flv = edge.flv_url("live", "cam");
    let (status, body) = curl(&flv);
    assert_eq!(
        (status, body.trim()),
        (403, "signed URL required (expires and token missing)")
    );
    let flv_probe = spawn_probe(&sign_url(&secret, 300, &flv));
    let rtmp = edge.rtmp_url("live", "cam");
    let rtmp_probe = spawn_probe(&sign_url(&secret, 300, &rtmp));
    let unsigned = output_bounded(spawn_probe(&rtmp), Duration::from_mins(1), "unsigned RTMP");
    assert!(
        !unsigned.status.success(),
        "an unsigned RTMP play must be refused"
    );
    // HLS on the edge: the edge packages the relayed stream itself.
    let playlist = sign_url(
        &secret,
        300,
        &format!("http://{}/live/cam/index.m3u8", edge.http),
    );
    let query = playlist.split_once('?').unwrap().1.to_owned();
    let mut segment = String::new();
    wait_for(&edge, "a playlist with segments on the edge", || {
        let (status, body) = curl(&playlist);
        if let Some(s) = body.lines().find(|l| l.starts_with("seg-")) {
            segment = s.to_owned();
        }
        status == 200 && !segment.is_empty()
    });
    assert!(segment.ends_with(&format!("?{query}")), "{segment}");
    let seg_url = format!("http://{}/live/cam/{segment}", edge.http);
    assert_eq!(curl(&seg_url).0, 200);
    assert_eq!(curl(seg_url.split('?').next().unwrap()).0, 403);
    let p = finish_probe(rtmp_probe, "signed RTMP via the edge");
    assert!(p.video_packets >= 30, "{p:?}");
    let p = finish_probe(flv_probe, "signed FLV via the edge");
    assert!(
        p.video_packets >= 30,
        "{p:?}\n{}\n{}",
        edge.log(),
        origin.log()
    );
    assert!(wait_bounded(&mut publisher, Duration::from_mins(1), "publisher").success());

    // VOD through the edge's cache: the edge signs its fetch from the origin.
    let vod = format!("http://{}/vod/clip.mp4", edge.http);
    assert_eq!(curl(&vod).0, 403);
    let (status, body) = curl(&sign_url(&secret, 300, &vod));
    assert_eq!(status, 200, "{body}\n{}", origin.log());
    assert!(body.len() > 10_000);
    // The origin refuses the same request unsigned from anyone else.
    assert_eq!(curl(&format!("http://{}/vod/clip.mp4", origin.http)).0, 403);
    assert!(refused_metric(&edge, "play", "missing_token") >= 2.0);
}

#[test]
fn play_webhook_asks_once_per_hls_session_and_denies_with_its_reason() {
    let (_rt, hook, calls) = start_webhook(|body| {
        if body["query"]["session"] == "ok" {
            (204, "")
        } else {
            (403, "no subscription for this channel")
        }
    });
    let server = Server::start_with(&[
        &format!("auth: {{ play_webhook: {{ url: \"{hook}\" }} }}"),
        "hls: { segment_duration_secs: 1 }",
    ]);
    let mut publisher = publish(&server.rtmp_url("live", "cam"), 8);
    server.wait_live("live", "cam");

    let playlist = format!("http://{}/live/cam/index.m3u8?session=ok", server.http);
    let mut segment = String::new();
    wait_for(&server, "a playlist with segments", || {
        let (status, body) = curl(&playlist);
        if let Some(s) = body.lines().find(|l| l.starts_with("seg-")) {
            segment = s.to_owned();
        }
        status == 200 && !segment.is_empty()
    });
    assert!(segment.ends_with("?session=ok"), "{segment}");
    let seg_url = format!("http://{}/live/cam/{segment}", server.http);
    assert_eq!(curl(&seg_url).0, 200);
    assert_eq!(curl(&seg_url).0, 200);
    assert_eq!(curl(&playlist).0, 200);
    {
        let calls = calls.lock().unwrap();
        let hls: Vec<_> = calls.iter().filter(|c| c["protocol"] == "hls").collect();
        assert_eq!(hls.len(), 1, "one webhook call per HLS session: {calls:?}");
        assert_eq!(hls[0]["action"], "play");
        assert_eq!(hls[0]["app"], "live");
        assert_eq!(hls[0]["name"], "cam");
    }
    let (status, body) = curl(&format!("{}?session=nope", server.flv_url("live", "cam")));
    assert_eq!(
        (status, body.trim()),
        (403, "no subscription for this channel")
    );
    let rtmp = output_bounded(
        spawn_probe(&format!("{}?session=nope", server.rtmp_url("live", "cam"))),
        Duration::from_mins(1),
        "refused RTMP play",
    );
    assert!(!rtmp.status.success());
    assert!(wait_bounded(&mut publisher, Duration::from_mins(1), "publisher").success());
    assert_eq!(refused_metric(&server, "play", "webhook_denied"), 2.0);
    server.expect_log("no subscription for this channel");
}

#[test]
fn urls_bound_to_an_address_play_only_from_it() {
    let dir = TempDir::new("bound-signing");
    let secret = secret_file(&dir);
    let server = Server::start_with(&[&format!(
        "auth: {{ play_signing_secret_file: \"{}\", play_signing_bind_addr: true }}",
        secret.display()
    )]);
    // No stream is live: an allowed request reaches the HLS route (404),
    // a refused one stops at the check (403).
    let playlist = format!("http://{}/live/cam/index.m3u8", server.http);
    let bound = |ip: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_fleetcast-media"))
            .arg("sign-url")
            .arg("--secret-file")
            .arg(&secret)
            .args(["--ttl-secs", "300", "--client-ip", ip, &playlist])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    // curl reaches the loopback server from 127.0.0.1.
    assert_eq!(curl(&bound("127.0.0.1")).0, 404, "{}", server.log());
    let (status, body) = curl(&bound("10.9.9.9"));
    assert_eq!((status, body.trim()), (403, "invalid token"));
    // An unbound URL does not pass a server that binds addresses.
    assert_eq!(curl(&sign_url(&secret, 300, &playlist)).0, 403);
}
