//! HLS with real clients: ffmpeg publishes over RTMP, ffprobe plays the
//! live playlist; headers, viewer sessions, and two servers fed by one
//! publish cutting identical segments.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod common;
#[path = "support/http_client.rs"]
mod http_client;

use std::time::{Duration, Instant};

use common::{
    Server, finish_probe, publish, require, spawn_probe, stream_of, test_pattern, wait_bounded,
};
use http_client::get;

/// Segment names of a playlist, in order.
fn segments(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Polls the playlist until it lists at least `n` segments (bounded).
fn wait_segments(server: &Server, path: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(server.http, path);
        if r.status == 200 && segments(&r.text()).len() >= n {
            return r.text();
        }
        assert!(
            Instant::now() < deadline,
            "playlist never had {n} segments: {} {}\n{}",
            r.status,
            r.text(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn live_playlist_plays_in_ffprobe_with_the_right_headers() {
    require("ffmpeg");
    require("ffprobe");
    let server = Server::start();
    let mut publisher = publish(&server.rtmp_url("live", "cam"), 14);
    server.wait_live("live", "cam");

    let text = wait_segments(&server, "/live/cam/index.m3u8", 3);
    assert!(text.starts_with("#EXTM3U"), "{text}");
    assert!(text.contains("#EXT-X-TARGETDURATION:2"), "{text}");
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{text}");
    assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
    let names = segments(&text);
    let starts: Vec<u64> = names
        .iter()
        .map(|n| {
            n.strip_prefix("seg-")
                .and_then(|s| s.strip_suffix(".ts"))
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    // Keyframes every second, 2 s target: a cut every second keyframe, named by its timestamp.
    assert!(starts.windows(2).all(|w| w[1] - w[0] == 2000), "{names:?}");
    let playlist = get(server.http, "/live/cam/index.m3u8");
    assert_eq!(
        playlist.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(playlist.header("cache-control"), Some("no-cache"));
    let seg = get(server.http, &format!("/live/cam/{}", names[1]));
    assert_eq!(seg.status, 200);
    assert_eq!(seg.header("content-type"), Some("video/mp2t"));
    assert!(seg.header("cache-control").unwrap().contains("immutable"));
    assert_eq!(seg.body.len() % 188, 0);
    assert_eq!(seg.body[0], 0x47);
    assert_eq!(get(server.http, "/live/cam/seg-1.ts").status, 404);
    assert_eq!(get(server.http, "/live/nobody/index.m3u8").status, 404);

    // The HLS session counts as a viewer.
    let streams = server.wait_streams("an HLS viewer", |s| {
        stream_of(s, "live", "cam")
            .is_some_and(|e| e["viewers_by_protocol"]["hls"].as_u64() >= Some(1))
    });
    assert!(stream_of(&streams, "live", "cam").unwrap()["viewers"].as_u64() >= Some(1));

    // A player reading the live playlist to the end of the stream.
    let url = format!("http://{}/live/cam/index.m3u8", server.http);
    let probe = spawn_probe(&url);
    assert!(wait_bounded(&mut publisher, Duration::from_mins(1), "ffmpeg").success());
    let p = finish_probe(probe, "ffprobe over HLS");
    assert_eq!(
        (p.video_codec.as_str(), p.audio_codec.as_str()),
        ("h264", "aac"),
        "{p:?}"
    );
    // At least the window it started on (3 segments of 2 s at 30 fps).
    assert!(p.video_packets >= 180, "{p:?}");
    assert!(p.audio_packets > 0, "{p:?}");

    // After the publisher left, the playlist ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(server.http, "/live/cam/index.m3u8")
        .text()
        .contains("#EXT-X-ENDLIST")
    {
        assert!(Instant::now() < deadline, "no ENDLIST after unpublish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_servers_fed_by_one_publish_cut_identical_segments() {
    require("ffmpeg");
    let a = Server::start();
    let b = Server::start();
    // One encode, sent to both servers (ffmpeg's tee muxer).
    let tee = format!(
        "[f=flv:onfail=abort]{}|[f=flv:onfail=abort]{}",
        a.rtmp_url("live", "same"),
        b.rtmp_url("live", "same")
    );
    let mut ffmpeg = test_pattern("640x360", true)
        .args(["-t", "12", "-f", "tee", &tee])
        .spawn()
        .unwrap();
    a.wait_live("live", "same");
    b.wait_live("live", "same");
    wait_segments(&a, "/live/same/index.m3u8", 4);
    wait_segments(&b, "/live/same/index.m3u8", 4);
    let names_a = segments(&get(a.http, "/live/same/index.m3u8").text());
    let names_b = segments(&get(b.http, "/live/same/index.m3u8").text());
    let common: Vec<&String> = names_a.iter().filter(|n| names_b.contains(n)).collect();
    assert!(common.len() >= 3, "{names_a:?} vs {names_b:?}");
    for n in common {
        let sa = get(a.http, &format!("/live/same/{n}"));
        let sb = get(b.http, &format!("/live/same/{n}"));
        assert_eq!(sa.status, 200);
        assert!(sa.body == sb.body, "{n} differs between the servers");
    }
    assert!(wait_bounded(&mut ffmpeg, Duration::from_mins(1), "ffmpeg tee").success());
}
