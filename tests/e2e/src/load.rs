//! The load tool (`media-bench play`) as a crowd of viewers: started,
//! watched until its viewers play, and stopped with SIGTERM, after which it
//! prints its JSON report (how every session ended, reconnects, moves).

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running `media-bench play`.
pub struct Crowd {
    child: Child,
    playing: Arc<AtomicU64>,
    viewers: u64,
    stderr_tail: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Playing `url` with `viewers` viewers; `extra` are further flags
/// (`--allow-net`, `--reconnect`, `--stall`).
pub fn start(bin: &Path, url: &str, viewers: u64, extra: &[&str]) -> anyhow::Result<Crowd> {
    let mut child = Command::new(bin)
        .args(["play", "--url", url, "--viewers", &viewers.to_string()])
        // Long enough for any step; the test ends it with SIGTERM.
        .args(["--duration", "900", "--progress", "1", "--json"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stderr = child.stderr.take().context("media-bench stderr")?;
    let playing = Arc::new(AtomicU64::new(0));
    let stderr_tail = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (p, tail) = (playing.clone(), stderr_tail.clone());
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(n) = playing_count(&line) {
                p.store(n, Ordering::Relaxed);
            }
            if let Ok(mut t) = tail.lock() {
                t.push(line);
                let excess = t.len().saturating_sub(20);
                t.drain(..excess);
            }
        }
    });
    Ok(Crowd {
        child,
        playing,
        viewers,
        stderr_tail,
    })
}

/// `N` of a progress line's `(N playing)`.
fn playing_count(line: &str) -> Option<u64> {
    let end = line.find(" playing)")?;
    let start = line[..end].rfind('(')? + 1;
    line[start..end].trim().parse().ok()
}

impl Crowd {
    /// Waits until every viewer plays (or the tool exits, or `timeout`).
    pub async fn wait_playing(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.playing.load(Ordering::Relaxed) >= self.viewers {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "media-bench exited ({status}) before its viewers played: {}",
                    self.tail()
                );
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} of {} viewers playing after {timeout:?}: {}",
                    self.playing.load(Ordering::Relaxed),
                    self.viewers,
                    self.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn tail(&self) -> String {
        self.stderr_tail
            .lock()
            .map(|t| t.join("\n"))
            .unwrap_or_default()
    }

    /// Stops the viewers (SIGTERM: the tool ends its run at once) and
    /// returns its JSON report.
    pub async fn stop(mut self) -> anyhow::Result<Value> {
        let pid = self.child.id().context("media-bench already exited")?;
        let kill = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .context("running kill")?;
        if !kill.success() {
            bail!("kill -TERM {pid} failed");
        }
        let mut stdout = self.child.stdout.take().context("media-bench stdout")?;
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(30), stdout.read_to_string(&mut out))
            .await
            .context("media-bench did not print its report within 30 s of SIGTERM")??;
        let status = self.child.wait().await?;
        if !status.success() {
            bail!("media-bench exited with {status}: {}", self.tail());
        }
        serde_json::from_str(&out)
            .with_context(|| format!("media-bench's report is not JSON: {out}"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_playing_count_of_a_progress_line() {
        let line = "[   3.0s] viewers 6/6 active (5 playing), 0 failed, 6.1 Mbit/s";
        assert_eq!(super::playing_count(line), Some(5));
        assert_eq!(super::playing_count("no count here"), None);
    }
}
