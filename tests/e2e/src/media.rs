//! The real media clients against Services: ffmpeg publishing a test
//! pattern, ffprobe playing over RTMP, HTTP-FLV and HLS.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// ffmpeg publishing an H.264/AAC test pattern in real time to `url`
/// (RTMP) until killed. Killed when dropped. Its stderr is discarded: a pipe
/// nobody reads would fill and stall it.
pub fn publish(url: &str) -> anyhow::Result<Child> {
    publish_logging(url, Stdio::null())
}

/// [`publish`] with ffmpeg's errors going to `stderr`. A write that stalls
/// for 10 s (the origin vanished without closing the connection) ends the
/// session, so a reconnecting publisher moves on instead of hanging in TCP
/// retransmissions.
fn publish_logging(url: &str, stderr: Stdio) -> anyhow::Result<Child> {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100"])
        .args(["-map", "0:v", "-map", "1:a"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
        .args(["-c:a", "aac", "-f", "flv", "-rw_timeout", "10000000", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
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

/// A publisher task; aborted (its ffmpeg killed) when dropped, so a test
/// that fails half-way leaves nothing publishing.
pub struct Publisher(tokio::task::JoinHandle<()>);

impl Drop for Publisher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// [`publish`] again whenever ffmpeg exits (its origin went away), one
/// second apart, until the returned [`Publisher`] is dropped.
/// Each restart is logged with the time since the first start, so a failed
/// failover step shows how long the publisher took to come back.
pub fn publish_reconnecting(url: String) -> Publisher {
    Publisher(tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut sessions = 0u32;
        loop {
            sessions += 1;
            if sessions > 1 {
                eprintln!(
                    "e2e: publisher session {sessions} starting at {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            let log = std::env::temp_dir().join(format!(
                "fleetcast-e2e-publisher-{}.log",
                std::process::id()
            ));
            let stderr = std::fs::File::create(&log).map_or_else(|_| Stdio::null(), Stdio::from);
            match publish_logging(&url, stderr) {
                Ok(mut child) => {
                    let status = child.wait().await;
                    let said = std::fs::read_to_string(&log).unwrap_or_default();
                    let _ = std::fs::remove_file(&log);
                    eprintln!(
                        "e2e: publisher session {sessions} ended at {:.1} s ({status:?}): {}",
                        started.elapsed().as_secs_f64(),
                        said.lines().last().unwrap_or("").trim()
                    );
                }
                Err(e) => eprintln!("e2e: publisher could not start: {e:#}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }))
}

/// One RTMP (or HTTP-FLV) viewer session: ffprobe printing a line per
/// packet, read continuously by a task that counts them, so a test can tell
/// that one session keeps receiving after some moment.
pub struct Viewer {
    child: Child,
    packets: std::sync::Arc<std::sync::atomic::AtomicU64>,
    reader: tokio::task::JoinHandle<()>,
}

impl Viewer {
    /// Starts playing `url`.
    pub fn start(url: &str) -> anyhow::Result<Viewer> {
        let mut child = Command::new("ffprobe")
            .args(["-v", "error", "-rw_timeout", "60000000"])
            .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0", url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting ffprobe (tests/setup installs ffmpeg)")?;
        let stdout = child.stdout.take().context("ffprobe stdout")?;
        let packets = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = packets.clone();
        let reader = tokio::spawn(async move {
            let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
            while let Ok(Some(_)) = lines.next_line().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        Ok(Viewer {
            child,
            packets,
            reader,
        })
    }

    /// Waits until `count` more packets than now have arrived in this same
    /// session; fails if the session ends first or `timeout` passes.
    /// (ffprobe's output is block-buffered, about 400 packets a block, so a
    /// count well above that shows packets made after this call.)
    pub async fn wait_packets(&mut self, count: u64, timeout: Duration) -> anyhow::Result<u64> {
        let start = self.packets.load(std::sync::atomic::Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let read = self.packets.load(std::sync::atomic::Ordering::Relaxed) - start;
            if read >= count {
                return Ok(read);
            }
            if self.reader.is_finished() {
                bail!("the viewer's session ended after {read} more packets");
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{read} of {count} packets in {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.reader.abort();
    }
}
