//! VOD with real files and clients: exact bytes for every kind of range,
//! conditional requests, traversal attempts, and RTMP playback of MP4 and
//! FLV files read by ffprobe.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod common;
#[path = "support/http_client.rs"]
mod http_client;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, finish_probe, make_mp4, output_bounded, require, spawn_probe};
use http_client::{get, request};

/// Deterministic non-repeating bytes.
fn content(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn vod_file(server: &Server, name: &str, data: &[u8]) -> std::path::PathBuf {
    let dir = server.data.0.join("vod");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

#[test]
fn ranges_return_the_exact_bytes_of_the_file() {
    let server = Server::start();
    let data = content(300_000);
    vod_file(&server, "clip.mp4", &data);
    let len = data.len();

    let full = get(server.http, "/vod/clip.mp4");
    assert_eq!(full.status, 200);
    assert_eq!(full.body, data);
    assert_eq!(full.header("content-type"), Some("video/mp4"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        full.header("content-length"),
        Some(len.to_string().as_str())
    );
    // VOD bytes count as egress for the autoscaler.
    let stats = get(server.admin, "/api/stats");
    let stats: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
    assert_eq!(stats["bytes_out"], len);
    let etag = full.header("etag").expect("an ETag").to_owned();
    let modified = full
        .header("last-modified")
        .expect("Last-Modified")
        .to_owned();

    let cases: [(&str, usize, usize); 6] = [
        ("bytes=0-0", 0, 0),
        ("bytes=0-99", 0, 99),
        ("bytes=1000-200999", 1000, 200_999),
        ("bytes=299990-", 299_990, len - 1),
        ("bytes=-500", len - 500, len - 1),
        ("bytes=250000-999999999", 250_000, len - 1),
    ];
    for (range, start, end) in cases {
        let r = request(server.http, "GET", "/vod/clip.mp4", &[("Range", range)]);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(r.body, data[start..=end], "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/{len}").as_str()),
            "{range}"
        );
        assert_eq!(
            r.header("content-length"),
            Some((end - start + 1).to_string().as_str())
        );
    }

    for range in ["bytes=300000-", "bytes=400000-500000", "bytes=-0"] {
        let r = request(server.http, "GET", "/vod/clip.mp4", &[("Range", range)]);
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{len}").as_str())
        );
        assert!(r.body.is_empty());
    }

    // Several ranges: the whole file (documented choice).
    let multi = request(
        server.http,
        "GET",
        "/vod/clip.mp4",
        &[("Range", "bytes=0-1,5-6")],
    );
    assert_eq!((multi.status, multi.body.len()), (200, len));

    // If-Range: a matching validator keeps the range, a stale one gets the whole file.
    for validator in [etag.as_str(), modified.as_str()] {
        let r = request(
            server.http,
            "GET",
            "/vod/clip.mp4",
            &[("Range", "bytes=10-19"), ("If-Range", validator)],
        );
        assert_eq!(
            (r.status, &r.body[..]),
            (206, &data[10..20]),
            "If-Range {validator}"
        );
    }
    for stale in ["\"0-0\"", "Mon, 01 Jan 2001 00:00:00 GMT"] {
        let r = request(
            server.http,
            "GET",
            "/vod/clip.mp4",
            &[("Range", "bytes=10-19"), ("If-Range", stale)],
        );
        assert_eq!(r.status, 200, "If-Range {stale}");
        assert_eq!(r.body, data);
    }

    // Conditional GET and HEAD.
    let r = request(
        server.http,
        "GET",
        "/vod/clip.mp4",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = request(
        server.http,
        "GET",
        "/vod/clip.mp4",
        &[("If-None-Match", "\"nope\"")],
    );
    assert_eq!((r.status, r.body.len()), (200, len));
    let r = request(server.http, "HEAD", "/vod/clip.mp4", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
    assert!(r.body.is_empty());
    let r = request(
        server.http,
        "HEAD",
        "/vod/clip.mp4",
        &[("Range", "bytes=5-9")],
    );
    assert_eq!((r.status, r.header("content-length")), (206, Some("5")));

    assert_eq!(get(server.http, "/vod/missing.mp4").status, 404);
}

#[test]
fn paths_never_escape_the_vod_directory() {
    let server = Server::start();
    vod_file(&server, "ok.flv", b"FLV-ok");
    // A secret next to the VOD root and a symlink inside pointing at it.
    let secret = b"top secret, outside the VOD root";
    std::fs::write(server.data.0.join("secret.txt"), secret).unwrap();
    std::os::unix::fs::symlink(
        server.data.0.join("secret.txt"),
        server.data.0.join("vod").join("link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&server.data.0, server.data.0.join("vod").join("up")).unwrap();
    std::fs::create_dir_all(server.data.0.join("recordings/live")).unwrap();
    std::fs::write(
        server.data.0.join("recordings/live/half.flv.part"),
        b"in progress",
    )
    .unwrap();

    assert_eq!(get(server.http, "/vod/ok.flv").body, b"FLV-ok");
    let attempts = [
        "/vod/../secret.txt",
        "/vod/%2e%2e/secret.txt",
        "/vod/%2E%2E%2Fsecret.txt",
        "/vod/..%2fsecret.txt",
        "/vod/..%5csecret.txt",
        "/vod/%2fetc%2fpasswd",
        "/vod//etc/passwd",
        "/vod/./ok.flv/../../secret.txt",
        "/vod/link.txt",
        "/vod/up/secret.txt",
        "/vod/up/config.yaml",
        "/vod/recordings/live/half.flv.part",
        "/vod/recordings/../secret.txt",
        "/vod/ok.flv%00.txt",
        "/vod/",
    ];
    for path in attempts {
        let r = get(server.http, path);
        assert!(matches!(r.status, 400 | 404), "{path}: {}", r.status);
        assert!(
            !r.body.windows(secret.len()).any(|w| w == secret),
            "{path} leaked the secret"
        );
        assert!(!r.text().contains("rtmp:"), "{path} leaked the config");
    }
}

#[test]
fn mp4_and_flv_files_play_over_rtmp() {
    require("ffprobe");
    let server = Server::start();
    let dir = server.data.0.join("vod");
    std::fs::create_dir_all(&dir).unwrap();
    make_mp4(&dir.join("end.mp4"), false);
    make_mp4(&dir.join("start.mp4"), true);
    // The same content as FLV.
    let out = output_bounded(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i"])
            .arg(dir.join("end.mp4"))
            .args(["-c", "copy", "-f", "flv"])
            .arg(dir.join("talk.flv"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_mins(1),
        "ffmpeg remux to FLV",
    );
    assert!(out.status.success());

    for name in ["end.mp4", "mp4:start.mp4", "mp4:end", "talk.flv", "talk"] {
        let url = server.rtmp_url("vod", name);
        let p = finish_probe(spawn_probe(&url), &url);
        assert_eq!(
            (p.video_codec.as_str(), p.audio_codec.as_str()),
            ("h264", "aac"),
            "{name}: {p:?}"
        );
        assert_eq!(p.video_packets, 90, "{name}: {p:?}");
        assert!(p.audio_packets >= 125, "{name}: {p:?}");
    }
    // And over HTTP, the file as it is.
    let url = format!("http://{}/vod/start.mp4", server.http);
    let p = finish_probe(spawn_probe(&url), &url);
    assert_eq!(p.video_packets, 90);
}
