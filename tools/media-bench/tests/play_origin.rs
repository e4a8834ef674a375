//! media-bench against a real Fleetcast origin (in this process, on
//! loopback) fed by a real ffmpeg publisher: `first-frame` finds the stream
//! and `play` counts frames over RTMP and HTTP-FLV. ffmpeg missing fails the
//! test with the reason.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use fleetcast_media::config::Config;
use fleetcast_media::server::{AppState, bind, run};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

async fn media_bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_media-bench"))
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "media-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_frame_and_play_over_rtmp_and_http_flv() {
    let found = std::process::Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "ffmpeg is not installed: run `apt-get install ffmpeg` (make deps does it)"
    );

    let data = std::env::temp_dir().join(format!("media-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();
    let mut config = Config::default();
    config.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.data_dir.clone_from(&data);
    let listeners = bind(&config).await.unwrap();
    let rtmp = listeners.rtmp.local_addr().unwrap();
    let http = listeners.http.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(run(listeners, AppState::new(config, shutdown.clone())));

    let rtmp_url = format!("rtmp://{rtmp}/live/bench");
    let mut publisher = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t",
            "60",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", &rtmp_url])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Waits (retrying) until the publisher is live and a keyframe arrives.
    let ms: f64 = media_bench(&["first-frame", "--url", &rtmp_url, "--timeout", "30"])
        .await
        .trim()
        .parse()
        .unwrap();
    assert!(ms > 0.0);

    let flv_url = format!("http://{http}/live/bench.flv");
    for url in [&rtmp_url, &flv_url] {
        let json = media_bench(&[
            "play",
            "--url",
            url,
            "--viewers",
            "3",
            "--duration",
            "4",
            "--progress",
            "0",
            "--json",
        ])
        .await;
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(report["viewers"], 3, "{json}");
        assert_eq!(report["ok"], 3, "{json}");
        assert_eq!(report["failures"], serde_json::json!({}), "{json}");
        assert!(
            report["video_frames"]["min"].as_f64().unwrap() > 0.0,
            "{json}"
        );
        assert!(report["total_bytes"].as_u64().unwrap() > 0, "{json}");
        assert!(report["first_keyframe_ms"]["max"].is_number(), "{json}");
    }

    publisher.kill().await.unwrap();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(&data);
}
