//! Recording with real clients: a published stream is recorded to FLV,
//! finished on unpublish, and plays back as VOD over HTTP and RTMP.
#![allow(
    clippy::unwrap_used,
    clippy::too_many_lines,
    clippy::case_sensitive_file_extension_comparisons,
    clippy::cast_possible_truncation,
    clippy::collapsible_if
)]

mod common;
#[path = "support/http_client.rs"]
mod http_client;

use std::time::{Duration, Instant};

use common::{Server, finish_probe, publish, require, spawn_probe, wait_bounded};

fn recordings(server: &Server) -> Vec<String> {
    let dir = server.data.0.join("recordings").join("live");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_recorded_stream_plays_back_as_vod_over_http_and_rtmp() {
    require("ffmpeg");
    require("ffprobe");
    let server = Server::start_with(&["apps: [ { name: live, record: true } ]"]);
    let mut publisher = publish(&server.rtmp_url("live", "show"), 5);
    server.wait_live("live", "show");
    // While publishing, only an in-progress file exists.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !recordings(&server).iter().any(|n| n.ends_with(".flv.part")) {
        assert!(
            Instant::now() < deadline,
            "no .part file while recording: {:?}",
            recordings(&server)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(wait_bounded(&mut publisher, Duration::from_mins(1), "ffmpeg").success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let file = loop {
        let names = recordings(&server);
        if let Some(done) = names.iter().find(|n| n.ends_with(".flv")) {
            if !names.iter().any(|n| n.ends_with(".part")) {
                break done.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "recording not finished: {names:?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        file.starts_with("show-") && file.ends_with("Z.flv"),
        "{file}"
    );

    let bytes = std::fs::read(server.data.0.join("recordings/live").join(&file)).unwrap();
    let tags = fleetcast_media::flv::parse_all(&bytes).expect("a complete FLV file");
    let frames = tags
        .iter()
        .filter(|t| t.kind == fleetcast_media::media::TagKind::Video && t.data.get(1) == Some(&1))
        .count();
    // 5 s at 30 fps, all of it: the recorder subscribes when the publish starts.
    assert!(frames >= 140, "{frames} video frames recorded");

    let http = format!("http://{}/vod/recordings/live/{file}", server.http);
    let p = finish_probe(spawn_probe(&http), "ffprobe of the recording over HTTP");
    assert_eq!(
        (p.video_codec.as_str(), p.audio_codec.as_str()),
        ("h264", "aac"),
        "{p:?}"
    );
    assert_eq!(p.video_packets as usize, frames, "{p:?}");

    let rtmp = server.rtmp_url("vod", &format!("recordings/live/{file}"));
    let p = finish_probe(spawn_probe(&rtmp), "ffprobe of the recording over RTMP");
    assert_eq!(
        (p.video_codec.as_str(), p.audio_codec.as_str()),
        ("h264", "aac"),
        "{p:?}"
    );
    assert_eq!(p.video_packets as usize, frames, "{p:?}");
}

#[test]
fn shutdown_finishes_an_open_recording() {
    require("ffmpeg");
    let mut server = Server::start_with(&["apps: [ { name: live, record: true } ]"]);
    let mut publisher = publish(&server.rtmp_url("live", "long"), 30);
    server.wait_live("live", "long");
    std::thread::sleep(Duration::from_secs(3));
    assert!(server.terminate().success(), "{}", server.log());
    let _ = publisher.kill();
    let _ = publisher.wait();
    let names = recordings(&server);
    assert!(!names.iter().any(|n| n.ends_with(".part")), "{names:?}");
    let file = names
        .iter()
        .find(|n| n.ends_with(".flv"))
        .expect("a finished recording");
    let bytes = std::fs::read(server.data.0.join("recordings/live").join(file)).unwrap();
    let tags = fleetcast_media::flv::parse_all(&bytes).expect("a complete FLV file");
    assert!(
        tags.iter()
            .any(|t| t.is_keyframe() && !t.is_sequence_header())
    );
}
