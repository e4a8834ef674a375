//! The origin with real clients on loopback: ffmpeg publishes a generated
//! H.264/AAC test pattern; ffprobe, ffmpeg and rtmpdump play it back over
//! RTMP and HTTP-FLV.

// Metric values are integer counts; comparing them exactly is intended.
#![allow(clippy::float_cmp)]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn rtmp_http_flv_and_rtmpdump_play_what_ffmpeg_publishes() {
    require("ffmpeg");
    require("ffprobe");
    require("rtmpdump");
    let server = Server::start();
    let mut publisher = publish(&server.rtmp_url("live", "cam"), 10);
    server.wait_live("live", "cam");

    let rtmp_probe = spawn_probe(&server.rtmp_url("live", "cam"));
    let flv_probe = spawn_probe(&server.flv_url("live", "cam"));
    let dump_path = server.data.0.join("dump.flv");
    let rtmpdump = Command::new("rtmpdump")
        .args(["-q", "--live", "-r", &server.rtmp_url("live", "cam"), "-o"])
        .arg(&dump_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Every playback session shows in /api/streams while they run.
    let streams = server.wait_streams("3 viewers", |s| {
        stream_of(s, "live", "cam").is_some_and(|e| e["viewers"].as_u64() >= Some(3))
    });
    let cam = stream_of(&streams, "live", "cam").unwrap();
    assert_eq!(cam["video_codec"], "h264");
    assert_eq!(cam["audio_codec"], "aac");
    assert!(
        cam["viewers_by_protocol"]["rtmp"].as_u64() >= Some(2),
        "{cam}"
    );
    assert!(
        cam["viewers_by_protocol"]["flv"].as_u64() >= Some(1),
        "{cam}"
    );
    assert!(cam["started_at"].as_str().unwrap().ends_with('Z'));

    let (status, text) = server.admin_get("/metrics");
    assert_eq!(status, 200);
    let samples = parse_metrics(&text);
    assert_eq!(metric(&samples, "fleetcast_media_streams"), 1.0);
    assert!(metric(&samples, "fleetcast_media_viewers{protocol=\"rtmp\"}") >= 2.0);
    assert!(metric(&samples, "fleetcast_media_viewers{protocol=\"flv\"}") >= 1.0);
    assert!(metric(&samples, "fleetcast_media_bytes_in_total") > 0.0);
    assert!(metric(&samples, "fleetcast_media_connections{protocol=\"rtmp\"}") >= 3.0);

    let status = wait_bounded(&mut publisher, Duration::from_mins(1), "ffmpeg publisher");
    assert!(status.success(), "publisher failed");

    for (probe, what) in [
        (rtmp_probe, "ffprobe over RTMP"),
        (flv_probe, "ffprobe over HTTP-FLV"),
    ] {
        let p = finish_probe(probe, what);
        assert_eq!(p.video_codec, "h264", "{what}: {p:?}");
        assert_eq!(p.audio_codec, "aac", "{what}: {p:?}");
        // At least the cached GOP (30 frames) and then live frames.
        assert!(p.video_packets >= 30, "{what}: {p:?}");
        assert!(p.audio_packets > 0, "{what}: {p:?}");
    }

    let out = output_bounded(rtmpdump, Duration::from_mins(1), "rtmpdump");
    let dump = read(&dump_path);
    let tags = fleetcast_media::flv::parse_all(&dump).unwrap_or_else(|e| {
        panic!(
            "rtmpdump output is not FLV ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let video: Vec<_> = tags
        .iter()
        .filter(|t| t.kind == fleetcast_media::media::TagKind::Video)
        .collect();
    assert!(
        video[0].is_sequence_header(),
        "video starts with the AVC sequence header"
    );
    assert!(video[1].is_keyframe(), "then a keyframe");
    assert!(video.len() > 30, "{} video tags", video.len());
    assert!(
        tags.iter()
            .any(|t| t.kind == fleetcast_media::media::TagKind::Audio)
    );
}

#[test]
fn a_second_publisher_is_refused_and_the_first_keeps_going() {
    require("ffmpeg");
    require("ffprobe");
    let server = Server::start();
    let mut first = publish(&server.rtmp_url("live", "cam"), 8);
    server.wait_live("live", "cam");

    let second = publish(&server.rtmp_url("live", "cam"), 3);
    let out = output_bounded(second, Duration::from_secs(30), "second publisher");
    assert!(
        !out.status.success(),
        "the second publisher must be refused"
    );

    // The first is still live and plays.
    let probe = spawn_probe(&server.flv_url("live", "cam"));
    assert!(wait_bounded(&mut first, Duration::from_mins(1), "first publisher").success());
    let p = finish_probe(probe, "ffprobe after the refusal");
    assert_eq!(p.video_codec, "h264");
    assert!(p.video_packets >= 30, "{p:?}");
    let samples = parse_metrics(&server.admin_get("/metrics").1);
    assert_eq!(
        metric(
            &samples,
            "fleetcast_media_publish_refused_total{reason=\"already_publishing\"}"
        ),
        1.0
    );
    server.expect_log("publish refused");
}

#[test]
fn a_stalled_reader_does_not_reduce_what_other_viewers_receive() {
    require("ffmpeg");
    require("ffprobe");
    let server = Server::start_with(&["limits: { viewer_queue_frames: 64 }"]);
    // Viewers join before the publisher, so each must receive every frame.
    let (mut stalled, mut stalled_session) = rtmp_play_raw(&server, "live", "cam", Some(4096));
    let probe_a = spawn_probe(&server.rtmp_url("live", "cam"));
    let probe_b = spawn_probe(&server.rtmp_url("live", "cam"));
    server.wait_streams("3 waiting viewers", |s| {
        // Waiting viewers are not listed until the stream is live; check the gauge instead.
        let _ = s;
        let samples = parse_metrics(&server.admin_get("/metrics").1);
        metric(&samples, "fleetcast_media_connections{protocol=\"rtmp\"}") >= 3.0
    });
    // A high constant bitrate so the stalled socket's buffers fill quickly.
    let mut publisher = publish_args(
        &server.rtmp_url("live", "cam"),
        8,
        &[
            "-frames:v",
            "240",
            "-b:v",
            "12M",
            "-minrate",
            "12M",
            "-maxrate",
            "12M",
            "-bufsize",
            "2M",
            "-x264-params",
            "nal-hrd=cbr",
        ],
    );
    assert!(wait_bounded(&mut publisher, Duration::from_mins(1), "publisher").success());
    let a = finish_probe(probe_a, "viewer A");
    let b = finish_probe(probe_b, "viewer B");
    assert_eq!(a.video_packets, 240, "viewer A got every frame: {a:?}");
    assert_eq!(b.video_packets, 240, "viewer B got every frame: {b:?}");
    assert_eq!(a.audio_packets, b.audio_packets);
    // The stalled viewer really fell behind: reading now, it gets what was
    // queued for it, skips the rest, and still learns the stream ended.
    let stalled_video = drain_until_unpublished(&mut stalled, &mut stalled_session);
    assert!(
        stalled_video < 240,
        "the stalled viewer got {stalled_video} frames"
    );
    let samples = parse_metrics(&server.admin_get("/metrics").1);
    assert!(
        metric(
            &samples,
            "fleetcast_media_dropped_frames_total{protocol=\"rtmp\"}"
        ) > 0.0,
        "the stalled viewer's skipped frames are counted"
    );
}

#[test]
fn malformed_input_closes_only_that_connection() {
    require("ffmpeg");
    require("ffprobe");
    let server = Server::start();
    let mut publisher = publish(&server.rtmp_url("live", "cam"), 8);
    server.wait_live("live", "cam");

    // Garbage instead of a handshake.
    let mut garbage = TcpStream::connect(server.rtmp).unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(closed_by_server(&mut garbage), "garbage handshake");

    // A chunk continuing a message that never started (format 3 on a new chunk stream).
    let mut bad_chunk = TcpStream::connect(server.rtmp).unwrap();
    rtmp_handshake(&mut bad_chunk);
    bad_chunk.write_all(&[0xc9, 1, 2, 3, 4]).unwrap();
    assert!(closed_by_server(&mut bad_chunk), "bad chunk header");

    // A connect command whose AMF nests objects 200 deep.
    let mut absurd_amf = TcpStream::connect(server.rtmp).unwrap();
    rtmp_handshake(&mut absurd_amf);
    let mut payload = vec![2, 0, 7];
    payload.extend_from_slice(b"connect");
    payload.extend_from_slice(&[0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
    for _ in 0..200 {
        payload.extend_from_slice(&[3, 0, 1, b'a']);
    }
    let msg = fleetcast_media::rtmp::chunk::encode_to_bytes(3, 20, 0, 0, &payload, 128);
    absurd_amf.write_all(&msg).unwrap();
    assert!(closed_by_server(&mut absurd_amf), "absurd AMF");

    // A message header announcing 16 MB (over the 8 MiB limit).
    let mut huge = TcpStream::connect(server.rtmp).unwrap();
    rtmp_handshake(&mut huge);
    huge.write_all(&[0x03, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0])
        .unwrap();
    assert!(closed_by_server(&mut huge), "oversized message");

    // HTTP: paths that are not streams.
    assert_eq!(server.get("/live/..%2F..%2Fetc%2Fpasswd.flv").0, 404);
    assert_eq!(server.get("/nope/cam.flv").0, 404);

    // The stream is still served.
    let probe = spawn_probe(&server.flv_url("live", "cam"));
    assert!(wait_bounded(&mut publisher, Duration::from_mins(1), "publisher").success());
    let p = finish_probe(probe, "ffprobe after malformed input");
    assert_eq!(p.video_codec, "h264");
    assert!(p.video_packets >= 30, "{p:?}");
    let samples = parse_metrics(&server.admin_get("/metrics").1);
    assert!(metric(&samples, "fleetcast_media_connections_rejected_total") >= 4.0);
    let log = server.log();
    assert!(
        log.contains("RTMP connection closed"),
        "reasons are logged: {log}"
    );
}

#[test]
fn unknown_apps_and_idle_streams_are_refused_cleanly() {
    require("ffprobe");
    let server = Server::start();
    assert_eq!(server.get("/healthz").0, 200);
    assert_eq!(server.get("/live/nothing.flv").0, 404);
    let out = Command::new("ffprobe")
        .args(["-v", "error", &server.rtmp_url("nope", "cam")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(server.streams()["streams"], serde_json::json!([]));
}

#[test]
fn sigterm_tells_clients_and_exits_cleanly() {
    require("ffmpeg");
    require("ffprobe");
    let mut server = Server::start();
    let mut publisher = publish(&server.rtmp_url("live", "cam"), 60);
    server.wait_live("live", "cam");
    let probe = spawn_probe(&server.rtmp_url("live", "cam"));
    server.wait_streams("a viewer", |s| {
        stream_of(s, "live", "cam").is_some_and(|e| e["viewers"].as_u64() >= Some(1))
    });
    let status = server.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        server.log()
    );
    // The player was told the stream ended and finished normally.
    let p = finish_probe(probe, "ffprobe during shutdown");
    assert_eq!(p.video_codec, "h264");
    let _ = wait_bounded(
        &mut publisher,
        Duration::from_secs(30),
        "publisher after shutdown",
    );
    let log = server.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn publishing_needs_the_token_when_one_is_configured() {
    require("ffmpeg");
    let token_dir = TempDir::new("token");
    let token_file = token_dir.0.join("publish-token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let line = format!(
        "auth: {{ publish_token_file: \"{}\" }}",
        token_file.display()
    );
    let server = Server::start_with(&[&line]);
    let refused = publish(&server.rtmp_url("live", "cam?token=wrong"), 2);
    let out = output_bounded(
        refused,
        Duration::from_secs(30),
        "publisher with a wrong token",
    );
    assert!(!out.status.success(), "a wrong token must be refused");
    let mut ok = publish(&server.rtmp_url("live", "cam?token=s3cret"), 3);
    server.wait_live("live", "cam");
    assert!(wait_bounded(&mut ok, Duration::from_secs(30), "publisher with the token").success());
    server.expect_log("bad or missing token");
}
