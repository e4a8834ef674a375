//! The real media clients against Services: ffmpeg publishing a test
//! pattern, ffprobe playing over RTMP, HTTP-FLV and HLS.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// ffmpeg publishing an H.264/AAC test pattern in real time to `url`
/// (RTMP) until killed. Killed when dropped.
pub fn publish(url: &str) -> anyhow::Result<Child> {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100"])
        .args(["-map", "0:v", "-map", "1:a"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
        .args(["-c:a", "aac", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting ffmpeg (tests/setup installs it)")
}

/// What ffprobe read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub codec: String,
    pub frames: u64,
}

/// Plays `url` with ffprobe for about `secs` seconds of media and counts the
/// video frames read.
pub async fn probe(url: &str, secs: u32) -> anyhow::Result<Probe> {
    let run = Command::new("ffprobe")
        .args(["-v", "error", "-rw_timeout", "15000000"])
        .args(["-read_intervals", &format!("%+{secs}")])
        .args(["-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=codec_name,nb_read_frames"])
        .args(["-of", "csv=p=0", url])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_mins(1), run)
        .await
        .with_context(|| format!("ffprobe {url} did not finish in 60 s"))?
        .context("running ffprobe (tests/setup installs ffmpeg)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().next().unwrap_or("").trim();
    let mut parts = line.split(',');
    let codec = parts.next().unwrap_or("").to_owned();
    let frames = parts
        .next()
        .and_then(|f| f.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if !out.status.success() || codec.is_empty() {
        bail!(
            "ffprobe {url} read nothing (status {}): {} {}",
            out.status,
            line,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(Probe { codec, frames })
}
