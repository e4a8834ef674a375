//! The `play` run: N viewers started over a ramp, all stopped at one
//! deadline, a progress line every few seconds, one report at the end.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::time::Instant;

use crate::stats::{Report, ViewerStats};
use crate::target::Target;
use crate::viewer::{self, Shared};

/// How to run the viewers.
#[derive(Debug, Clone)]
pub struct PlayOptions {
    /// The URL as given (for the report).
    pub url: String,
    /// What to play.
    pub target: Target,
    /// How many viewers.
    pub viewers: usize,
    /// Whole run length, ramp included.
    pub duration: Duration,
    /// Viewers start evenly spread over this span.
    pub ramp: Duration,
    /// Progress line interval; `None` for silence.
    pub progress: Option<Duration>,
    /// Keep each viewer's stats in the report.
    pub per_viewer: bool,
}

/// Runs the viewers and aggregates what they saw.
pub async fn run(opts: &PlayOptions) -> Result<Report> {
    if opts.viewers == 0 {
        bail!("--viewers must be at least 1");
    }
    let shared = Arc::new(Shared::new());
    let deadline = shared.start + opts.duration;
    let target = Arc::new(opts.target.clone());
    let mut tasks = Vec::with_capacity(opts.viewers);
    for id in 0..opts.viewers {
        let shared = Arc::clone(&shared);
        let target = Arc::clone(&target);
        #[allow(clippy::cast_precision_loss)] // viewer counts far below 2^52
        let offset = opts.ramp.mul_f64(id as f64 / opts.viewers as f64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(shared.start + offset).await;
            viewer_task(id, &target, &shared, deadline).await
        }));
    }
    let progress = opts.progress.map(|every| {
        let shared = Arc::clone(&shared);
        let viewers = opts.viewers;
        tokio::spawn(async move { progress_loop(&shared, every, deadline, viewers).await })
    });
    let mut all = Vec::with_capacity(opts.viewers);
    for (id, task) in tasks.into_iter().enumerate() {
        all.push(task.await.unwrap_or_else(|e| {
            let mut v = ViewerStats::new(id, 0.0);
            v.error = Some(format!("viewer task: {e}"));
            v
        }));
    }
    if let Some(p) = progress {
        p.abort();
    }
    let elapsed = shared.start.elapsed().as_secs_f64();
    Ok(Report::build(&opts.url, &all, elapsed, opts.per_viewer))
}

async fn viewer_task(
    id: usize,
    target: &Target,
    shared: &Shared,
    deadline: Instant,
) -> ViewerStats {
    let mut stats = ViewerStats::new(id, shared.now_ms());
    shared.active.fetch_add(1, Ordering::Relaxed);
    let outcome =
        tokio::time::timeout_at(deadline, viewer::play(target, &mut stats, shared, false)).await;
    shared.active.fetch_sub(1, Ordering::Relaxed);
    match outcome {
        Err(_deadline) => {}
        Ok(Ok(())) => stats.error = Some("closed by server".to_owned()),
        Ok(Err(e)) => stats.error = Some(format!("{e:#}")),
    }
    if stats.error.is_some() {
        shared.failed.fetch_add(1, Ordering::Relaxed);
    }
    stats
}

async fn progress_loop(shared: &Shared, every: Duration, deadline: Instant, viewers: usize) {
    let mut last_bytes = 0u64;
    let mut last_frames = 0u64;
    let mut tick = tokio::time::interval_at(shared.start + every, every);
    while tick.tick().await < deadline {
        let bytes = shared.bytes.load(Ordering::Relaxed);
        let frames = shared.video_frames.load(Ordering::Relaxed);
        let secs = every.as_secs_f64();
        #[allow(clippy::cast_precision_loss)] // counters far below 2^52
        let (mbps, fps) = (
            (bytes - last_bytes) as f64 * 8.0 / secs / 1e6,
            (frames - last_frames) as f64 / secs,
        );
        eprintln!(
            "[{:>6.1}s] viewers {}/{} active, {} failed, {:.1} Mbit/s, {:.0} video frames/s",
            shared.start.elapsed().as_secs_f64(),
            shared.active.load(Ordering::Relaxed),
            viewers,
            shared.failed.load(Ordering::Relaxed),
            mbps,
            fps
        );
        last_bytes = bytes;
        last_frames = frames;
    }
}

/// Time from `t0` until a viewer that keeps retrying (every `retry`) shows
/// its first keyframe; the publisher may start after `t0`.
pub async fn first_frame(
    target: &Target,
    t0: Instant,
    timeout: Duration,
    retry: Duration,
) -> Result<Duration> {
    let deadline = t0 + timeout;
    let shared = Shared::starting_at(t0);
    let mut last_error = String::from("no attempt made");
    while Instant::now() < deadline {
        let mut stats = ViewerStats::new(0, shared.now_ms());
        match tokio::time::timeout_at(deadline, viewer::play(target, &mut stats, &shared, true))
            .await
        {
            Ok(Ok(())) if stats.first_keyframe_ms.is_some() => {
                let ms = stats.started_ms + stats.first_keyframe_ms.unwrap_or(0.0);
                return Ok(Duration::from_secs_f64(ms / 1000.0));
            }
            Ok(Ok(())) => "no keyframe".clone_into(&mut last_error),
            Ok(Err(e)) => last_error = format!("{e:#}"),
            Err(_) => break,
        }
        tokio::time::sleep(retry).await;
    }
    bail!("no keyframe within {timeout:?} (last attempt: {last_error})")
}
