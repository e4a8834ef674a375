//! CMAF and low-latency HLS with real clients: ffmpeg publishes a test
//! pattern over RTMP; ffmpeg/ffprobe read `ll.m3u8` and the live
//! `/APP/NAME.mp4`; a blocking playlist reload returns once the asked part
//! exists; two edges serve the origin's init segment, segments and parts
//! byte for byte.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
mod edge_common;
#[path = "support/http_client.rs"]
mod http_client;

use std::collections::BTreeSet;
use std::time::Duration;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{Server, finish_probe, publish, spawn_probe};
use edge_common::{Reaped, finish_player, spawn_player, start_edge, urls_of, viewers, wait_until};
use http_client::get;

const LL: &str = "/live/ll/ll.m3u8";

/// ffmpeg decodes `secs` seconds of `url` (both streams) without an error.
fn decodes(url: &str, secs: u32) {
    let out = common::output_bounded(
        std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-i", url])
            .args(["-t", &secs.to_string(), "-f", "null", "-"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_mins(1),
        "ffmpeg decoding",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "{url}: {err}"
    );
}

/// URIs of a playlist: segment lines and the URIs of `EXT-X-PART` tags.
fn uris(playlist: &str) -> (Vec<String>, Vec<String>) {
    let segs = playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let parts = playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .filter_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
        .map(str::to_owned)
        .collect();
    (segs, parts)
}

fn playlist(s: &Server, path: &str) -> String {
    let r = get(s.http, path);
    if r.status == 200 {
        r.text()
    } else {
        String::new()
    }
}

fn wait_segments(s: &Server, path: &str, n: usize) -> String {
    let mut p = String::new();
    wait_until(Duration::from_secs(40), "LL-HLS segments", || {
        p = playlist(s, path);
        uris(&p).0.len() >= n
    });
    p
}

#[test]
fn ll_hls_plays_with_ffmpeg() {
    let origin = Server::start_with(&["hls: { segment_duration_secs: 1, window: 10 }"]);
    let _publisher = Reaped(publish(&origin.rtmp_url("live", "ll"), 60));
    origin.wait_live("live", "ll");
    let p = wait_segments(&origin, LL, 2);
    assert!(p.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n"), "{p}");
    assert!(p.contains("#EXT-X-MAP:URI=\"init.mp4\""), "{p}");
    assert!(p.contains("#EXT-X-PRELOAD-HINT:TYPE=PART"), "{p}");
    assert!(p.contains(",INDEPENDENT=YES"), "{p}");
    let init = get(origin.http, "/live/ll/init.mp4");
    assert_eq!(init.status, 200);
    assert_eq!(&init.body[4..8], b"ftyp");
    // ffprobe: codecs of the CMAF rendition.
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(format!("http://{}{LL}", origin.http))
        .output()
        .unwrap();
    let codecs = String::from_utf8_lossy(&probe.stdout).to_string();
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "{codecs} {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    // ffmpeg plays 4 s of it: frames of both streams, timestamps increasing.
    let played = finish_player(
        spawn_player(&format!("http://{}{LL}", origin.http), 4),
        "ffmpeg reading ll.m3u8",
    );
    assert!(played.count(0) > 30 && played.count(1) > 30, "{played:?}");
    decodes(&format!("http://{}{LL}", origin.http), 3);
    for index in [0, 1] {
        let dts: Vec<i64> = played
            .packets
            .iter()
            .filter(|p| p.0 == index)
            .map(|p| p.1)
            .collect();
        assert!(
            dts.windows(2).all(|w| w[0] < w[1]),
            "stream {index}: {dts:?}"
        );
    }
}

#[test]
fn live_mp4_is_one_init_then_fragments_with_prft_and_a_viewer() {
    let origin = Server::start();
    let _publisher = Reaped(publish(&origin.rtmp_url("live", "mp4"), 60));
    origin.wait_live("live", "mp4");
    let mut s = TcpStream::connect(origin.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /live/mp4.mp4 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = Vec::new();
    while got.len() < 200_000 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    let find = |pat: &[u8]| got.windows(pat.len()).filter(|w| *w == pat).count();
    assert!(find(b"ftyp") == 1 && find(b"moov") == 1, "one init segment");
    assert!(find(b"moof") >= 5 && find(b"prft") + 1 >= find(b"moof"));
    assert!(String::from_utf8_lossy(&got[..512]).contains("video/mp4"));
    // Counted as a viewer while connected.
    wait_until(Duration::from_secs(10), "an mp4 viewer", || {
        viewers(&origin, "live", "mp4") >= 1
    });
    drop(s);
}

#[test]
fn live_mp4_frames_decode_with_ffprobe() {
    let origin = Server::start();
    let publisher = publish(&origin.rtmp_url("live", "mp4b"), 5);
    origin.wait_live("live", "mp4b");
    let child = spawn_probe(&format!("http://{}/live/mp4b.mp4", origin.http));
    let probe = finish_probe(child, "ffprobe reading /live/mp4b.mp4");
    let _ = Reaped(publisher);
    assert_eq!(probe.video_codec, "h264", "{probe:?}");
    assert_eq!(probe.audio_codec, "aac", "{probe:?}");
    assert!(
        probe.video_packets > 30 && probe.audio_packets > 30,
        "{probe:?}"
    );
}

#[test]
fn blocking_reload_returns_once_the_part_exists() {
    let origin = Server::start_with(&["hls: { segment_duration_secs: 2, window: 6 }"]);
    let _publisher = Reaped(publish(&origin.rtmp_url("live", "ll"), 60));
    origin.wait_live("live", "ll");
    let p = wait_segments(&origin, LL, 1);
    let msn: u64 = p
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .parse()
        .unwrap();
    let (segs, _) = uris(&p);
    // The segment after the last complete one, two parts in: not there yet.
    let next = msn + segs.len() as u64;
    let ask = format!("{LL}?_HLS_msn={next}&_HLS_part=2");
    let r = get(origin.http, &ask);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.text();
    // The answer lists that segment's third part: the open segment's parts
    // (after the last EXTINF) number at least three, or segment `next` is complete.
    let tail = body.rsplit("#EXTINF").next().unwrap();
    let open_parts = tail
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .count();
    let complete = uris(&body).0.len() as u64
        + body
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .unwrap()
            .parse::<u64>()
            .unwrap();
    assert!(open_parts >= 3 || complete > next, "{ask}\n{body}");
    assert!(
        !p.contains(
            tail.lines()
                .filter(|l| l.starts_with("#EXT-X-PART:"))
                .nth(2)
                .unwrap_or("-")
        )
    );
    // Far ahead: 400 at once; _HLS_part alone: 400.
    assert_eq!(
        get(origin.http, &format!("{LL}?_HLS_msn={}", next + 10)).status,
        400
    );
    assert_eq!(get(origin.http, &format!("{LL}?_HLS_part=1")).status, 400);
    // The preload hint is served once finished.
    let hint = body
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let r = get(origin.http, &format!("/live/ll/{hint}"));
    assert_eq!(r.status, 200, "{hint}");
    assert!(r.body.windows(4).any(|w| w == b"moof"));
}

#[test]
fn edges_serve_the_origins_ll_files_byte_for_byte() {
    let hls = ["hls: { segment_duration_secs: 1, window: 20 }"];
    let origin = Server::start_with(&hls);
    let _publisher = Reaped(publish(&origin.rtmp_url("live", "ll"), 120));
    origin.wait_live("live", "ll");
    let (e1, _c1) = start_edge(&urls_of(&origin), 5, &hls);
    std::thread::sleep(Duration::from_millis(1500));
    let (e2, _c2) = start_edge(&urls_of(&origin), 5, &hls);
    for e in [&e1, &e2] {
        let r = get(e.http, LL);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let mut common = BTreeSet::new();
    wait_until(Duration::from_secs(40), "segments common to all", || {
        let sets: Vec<BTreeSet<String>> = [&origin, &e1, &e2]
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (segs, parts) = uris(&playlist(s, LL));
                // An edge's first segment starts where it joined.
                let skip = usize::from(i > 0);
                let first = segs.get(skip).cloned();
                segs.into_iter()
                    .skip(skip)
                    .chain(parts.into_iter().filter(|p| {
                        first.as_ref().is_some_and(|f| {
                            let ms = |s: &str| -> u64 {
                                s.trim_start_matches("seg-")
                                    .trim_start_matches("part-")
                                    .trim_end_matches(".m4s")
                                    .parse()
                                    .unwrap_or(0)
                            };
                            ms(p) >= ms(f)
                        })
                    }))
                    .collect()
            })
            .collect();
        common = sets[0]
            .intersection(&sets[1])
            .cloned()
            .collect::<BTreeSet<_>>()
            .intersection(&sets[2])
            .cloned()
            .collect();
        common.iter().filter(|n| n.starts_with("seg-")).count() >= 3
            && common.iter().filter(|n| n.starts_with("part-")).count() >= 3
    });
    // The live fMP4 stream plays from an edge too.
    let mut s = TcpStream::connect(e2.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /live/ll.mp4 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.windows(4).filter(|w| *w == b"moof").count() < 3 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "edge .mp4 ended early");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.windows(4).any(|w| w == b"ftyp"));
    drop(s);
    let mut files: Vec<String> = common.into_iter().collect();
    files.push("init.mp4".into());
    for f in &files {
        let path = format!("/live/ll/{f}");
        let want = get(origin.http, &path);
        assert_eq!(want.status, 200, "{path}");
        assert!(want.body.len() > 100, "{path}");
        for (i, e) in [&e1, &e2].into_iter().enumerate() {
            let got = get(e.http, &path);
            assert_eq!(got.status, 200, "edge {i} {path}");
            assert!(
                got.body == want.body,
                "edge {i}: {path} differs from the origin's"
            );
        }
    }
}

/// The status code of a GET whose body may never end (the live `.mp4`).
fn status_of_stream(addr: std::net::SocketAddr, path: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

#[test]
fn signed_urls_guard_ll_hls_and_live_mp4_and_the_token_reaches_every_uri() {
    let dir = common::TempDir::new("cmaf-signing");
    let secret_path = dir.0.join("play-secret");
    std::fs::write(&secret_path, "cmaf-test-secret\n").unwrap();
    let origin = Server::start_with(&[
        &format!(
            "auth: {{ play_signing_secret_file: \"{}\" }}",
            secret_path.display()
        ),
        "hls: { segment_duration_secs: 1 }",
    ]);
    let _publisher = Reaped(publish(&origin.rtmp_url("live", "ll"), 60));
    origin.wait_live("live", "ll");
    let expires = fleetcast_media::auth::unix_now() + 300;
    let q = fleetcast_media::auth::signing::query(
        b"cmaf-test-secret",
        "live/ll",
        expires,
        fleetcast_media::auth::signing::Binding::None,
    );
    let p = wait_segments(&origin, &format!("{LL}?{q}"), 1);
    for path in [LL, "/live/ll/init.mp4"] {
        assert_eq!(get(origin.http, path).status, 403, "{path}");
    }
    assert_eq!(status_of_stream(origin.http, "/live/ll.mp4"), 403);
    assert_eq!(
        status_of_stream(origin.http, &format!("/live/ll.mp4?{q}")),
        200
    );
    // Every URI of the playlist, attributes included, carries the token and is served.
    let (segs, parts) = uris(&p);
    let map = p
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    for u in segs.iter().chain(&parts).chain([&map]) {
        assert!(u.ends_with(&format!("?{q}")), "{u}\n{p}");
        let r = get(origin.http, &format!("/live/ll/{u}"));
        assert_eq!(r.status, 200, "{u}");
        let bare = u.split('?').next().unwrap();
        assert_eq!(
            get(origin.http, &format!("/live/ll/{bare}")).status,
            403,
            "{bare}"
        );
    }
}
