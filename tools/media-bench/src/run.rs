//! The `play` run: N viewers started over a ramp, all stopped at one
//! deadline (or at SIGINT/SIGTERM), a progress line every few seconds, one
//! report at the end. With `--reconnect` a viewer the server tells to leave
//! connects again, as players do.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::signal::unix::Signal;
use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::ending::{End, Moves, Session, should_reconnect};
use crate::stats::{Report, ViewerStats};
use crate::target::Target;
use crate::viewer::{self, Ended, PlayMode, Shared};

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
    /// Reconnecting after being told to leave.
    pub reconnect: ReconnectOptions,
    /// No byte for this long (while not told the stream ended) is a cut.
    pub stall: Option<Duration>,
    /// SIGINT/SIGTERM end the run early (with its report).
    pub stop_on_signal: bool,
}

/// `--reconnect` and its bounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReconnectOptions {
    /// Reconnect at all.
    pub enabled: bool,
    /// Pause before each reconnect.
    pub delay: Duration,
    /// Reconnects per viewer at most.
    pub max: u32,
}

/// What every viewer task shares besides the counters.
struct Plan {
    target: Target,
    reconnect: ReconnectOptions,
    stall: Option<Duration>,
    /// Cancelled at the deadline or on SIGINT/SIGTERM.
    stop: CancellationToken,
}

/// Runs the viewers and aggregates what they saw.
pub async fn run(opts: &PlayOptions) -> Result<Report> {
    if opts.viewers == 0 {
        bail!("--viewers must be at least 1");
    }
    let shared = Arc::new(Shared::new());
    let deadline = shared.start + opts.duration;
    let plan = Arc::new(Plan {
        target: opts.target.clone(),
        reconnect: opts.reconnect,
        stall: opts.stall,
        stop: CancellationToken::new(),
    });
    // Handlers in place before any viewer starts (and so before any
    // progress line a test may wait for before signalling).
    let signals = opts.stop_on_signal.then(|| {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    });
    let stopper = tokio::spawn(stop_at(deadline, signals, plan.stop.clone()));
    let mut tasks = Vec::with_capacity(opts.viewers);
    for id in 0..opts.viewers {
        let shared = Arc::clone(&shared);
        let plan = Arc::clone(&plan);
        #[allow(clippy::cast_precision_loss)] // viewer counts far below 2^52
        let offset = opts.ramp.mul_f64(id as f64 / opts.viewers as f64);
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep_until(shared.start + offset) => {}
                () = plan.stop.cancelled() => return ViewerStats::new(id, shared.now_ms()),
            }
            viewer_task(id, &plan, &shared).await
        }));
    }
    let progress = opts.progress.map(|every| {
        let shared = Arc::clone(&shared);
        let viewers = opts.viewers;
        let stop = plan.stop.clone();
        tokio::spawn(async move { progress_loop(&shared, every, &stop, viewers).await })
    });
    let mut all = Vec::with_capacity(opts.viewers);
    for (id, task) in tasks.into_iter().enumerate() {
        all.push(task.await.unwrap_or_else(|e| {
            let mut v = ViewerStats::new(id, 0.0);
            v.error = Some(format!("viewer task: {e}"));
            v
        }));
    }
    stopper.abort();
    if let Some(p) = progress {
        p.abort();
    }
    let elapsed = shared.start.elapsed().as_secs_f64();
    let mut report = Report::build(&opts.url, &all, elapsed, opts.per_viewer);
    if opts.reconnect.enabled {
        report.moves = Moves::of(
            all.iter().map(|v| v.sessions.as_slice()),
            opts.reconnect.max,
        );
    }
    Ok(report)
}

/// SIGTERM and SIGINT handlers, when the run stops on them.
type Signals = (std::io::Result<Signal>, std::io::Result<Signal>);

/// Cancels `stop` at `deadline` or at the first SIGINT/SIGTERM (a test or
/// a person ending the load early still gets the report).
async fn stop_at(deadline: Instant, handlers: Option<Signals>, stop: CancellationToken) {
    let signalled = async {
        match handlers {
            Some((Ok(mut term), Ok(mut int))) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            // Without signal handlers the deadline still ends the run.
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => {}
        () = signalled => eprintln!("signal: ending the run now"),
    }
    stop.cancel();
}

/// One viewer: its first connection, then reconnects while told to leave
/// and allowed, until the run stops.
async fn viewer_task(id: usize, plan: &Plan, shared: &Shared) -> ViewerStats {
    let mut stats = ViewerStats::new(id, shared.now_ms());
    let mode = PlayMode {
        until_keyframe: false,
        leave_on_end: plan.reconnect.enabled,
        stall: plan.stall,
    };
    let mut attempt = 0u32;
    loop {
        stats.begin_session(attempt);
        if attempt > 0 {
            shared.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        let started_ms = shared.now_ms();
        shared.active.fetch_add(1, Ordering::Relaxed);
        let outcome = tokio::select! {
            r = viewer::play(&plan.target, &mut stats, shared, mode) => Some(r),
            () = plan.stop.cancelled() => None,
        };
        shared.active.fetch_sub(1, Ordering::Relaxed);
        if stats.session_started {
            shared.playing.fetch_sub(1, Ordering::Relaxed);
        }
        let end = session_end(outcome, stats.session_started);
        let session = Session {
            attempt,
            started_ms,
            played: stats.session_keyframes > 0,
            end,
        };
        count_session(&session, shared);
        let again = should_reconnect(
            &session.end,
            attempt,
            plan.reconnect.enabled,
            plan.reconnect.max,
        );
        stats.error = viewer_error(&session.end);
        stats.sessions.push(session);
        if !again {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(plan.reconnect.delay) => {}
            () = plan.stop.cancelled() => break,
        }
        attempt += 1;
    }
    if stats.error.is_some() {
        shared.failed.fetch_add(1, Ordering::Relaxed);
    }
    stats
}

/// How a session ended, from what `play` returned (`None`: the run
/// stopped it) and whether the server had accepted the play.
fn session_end(outcome: Option<Result<Ended>>, started: bool) -> End {
    match (outcome, started) {
        (None | Some(Ok(Ended::Keyframe)), true) => End::StillPlaying,
        (None | Some(Ok(Ended::Keyframe)), false) => End::Connecting,
        (Some(Ok(Ended::Told(code))), _) => End::Told { code },
        (Some(Ok(Ended::Cut(reason))), true) => End::Cut { reason },
        (Some(Ok(Ended::Cut(reason))), false) => End::Failed { reason },
        (Some(Err(e)), true) => End::Cut {
            reason: format!("{e:#}"),
        },
        (Some(Err(e)), false) => End::Failed {
            reason: format!("{e:#}"),
        },
    }
}

/// The viewer's error after a session ended this way (its last one).
fn viewer_error(end: &End) -> Option<String> {
    match end {
        End::Told { code } => Some(format!("told to leave: {code}")),
        End::Cut { reason } | End::Failed { reason } => Some(reason.clone()),
        End::StillPlaying | End::Connecting => None,
    }
}

fn count_session(s: &Session, shared: &Shared) {
    match s.end {
        End::Told { .. } => shared.told.fetch_add(1, Ordering::Relaxed),
        End::Cut { .. } => shared.cut.fetch_add(1, Ordering::Relaxed),
        _ => 0,
    };
}

async fn progress_loop(shared: &Shared, every: Duration, stop: &CancellationToken, viewers: usize) {
    let mut last_bytes = 0u64;
    let mut last_frames = 0u64;
    let mut tick = tokio::time::interval_at(shared.start + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let bytes = shared.bytes.load(Ordering::Relaxed);
        let frames = shared.video_frames.load(Ordering::Relaxed);
        let secs = every.as_secs_f64();
        #[allow(clippy::cast_precision_loss)] // counters far below 2^52
        let (mbps, fps) = (
            (bytes - last_bytes) as f64 * 8.0 / secs / 1e6,
            (frames - last_frames) as f64 / secs,
        );
        // Sessions told/cut so far; reconnects started and how many of
        // them received a keyframe (tests wait on these words).
        eprintln!(
            "[{:>6.1}s] viewers {}/{} active ({} playing), {} failed, {:.1} Mbit/s, {:.0} video frames/s, sessions told {} cut {}, reconnects {} ok {}",
            shared.start.elapsed().as_secs_f64(),
            shared.active.load(Ordering::Relaxed),
            viewers,
            shared.playing.load(Ordering::Relaxed),
            shared.failed.load(Ordering::Relaxed),
            mbps,
            fps,
            shared.told.load(Ordering::Relaxed),
            shared.cut.load(Ordering::Relaxed),
            shared.reconnects.load(Ordering::Relaxed),
            shared.reconnected_ok.load(Ordering::Relaxed),
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
        let mode = PlayMode {
            until_keyframe: true,
            ..PlayMode::default()
        };
        match tokio::time::timeout_at(deadline, viewer::play(target, &mut stats, &shared, mode))
            .await
        {
            Ok(Ok(Ended::Keyframe)) if stats.first_keyframe_ms.is_some() => {
                let ms = stats.started_ms + stats.first_keyframe_ms.unwrap_or(0.0);
                return Ok(Duration::from_secs_f64(ms / 1000.0));
            }
            Ok(Ok(Ended::Told(code))) => last_error = format!("told to leave: {code}"),
            Ok(Ok(Ended::Cut(reason))) => last_error = reason,
            Ok(Ok(Ended::Keyframe)) => "no keyframe".clone_into(&mut last_error),
            Ok(Err(e)) => last_error = format!("{e:#}"),
            Err(_) => break,
        }
        tokio::time::sleep(retry).await;
    }
    bail!("no keyframe within {timeout:?} (last attempt: {last_error})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_end_from_what_play_returned() {
        let told = || Some(Ok(Ended::Told("NetStream.Play.UnpublishNotify".into())));
        assert_eq!(
            session_end(told(), true),
            End::Told {
                code: "NetStream.Play.UnpublishNotify".into()
            }
        );
        assert_eq!(session_end(None, true), End::StillPlaying);
        assert_eq!(session_end(None, false), End::Connecting);
        // Closed or erring after the play was accepted: cut; before: failed.
        let closed = || Some(Ok(Ended::Cut("closed by server".into())));
        assert!(
            matches!(session_end(closed(), true), End::Cut { reason } if reason == "closed by server")
        );
        assert!(matches!(session_end(closed(), false), End::Failed { .. }));
        let reset = || {
            Some(Err(
                anyhow::anyhow!("Connection reset by peer").context("read")
            ))
        };
        assert!(
            matches!(session_end(reset(), true), End::Cut { reason } if reason == "read: Connection reset by peer")
        );
        assert!(matches!(session_end(reset(), false), End::Failed { .. }));

        assert_eq!(
            viewer_error(&session_end(told(), true)).as_deref(),
            Some("told to leave: NetStream.Play.UnpublishNotify")
        );
        assert_eq!(viewer_error(&End::StillPlaying), None);
    }
}
