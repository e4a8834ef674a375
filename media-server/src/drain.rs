//! Leaving without cutting viewers off: on SIGTERM the server first fails
//! readiness (`/readyz` answers 503 while `/healthz` stays 200), so
//! Kubernetes takes the pod out of its Services and new viewers go to other
//! edges; it keeps serving the viewers it has for `drain.period_secs`; then the
//! normal shutdown tells RTMP viewers the stream ended
//! (`NetStream.Play.UnpublishNotify`, so players reconnect through the
//! Service), ends HTTP-FLV responses and exits. HLS players simply fetch their
//! next segment from another edge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::info;

/// The `drain` section of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DrainConfig {
    /// Seconds to keep serving after SIGTERM with readiness failing, before
    /// viewers are told to reconnect. 0 (the default) shuts down at once.
    pub period_secs: u64,
}

/// Whether this server is draining; shared by the signal handler and `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    draining: Arc<AtomicBool>,
}

impl Drain {
    /// From now on `/readyz` answers 503.
    pub fn begin(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// True once draining began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Runs the drain after the first termination signal: readiness fails at
/// once, then this returns after `period` (or at a second signal, for people
/// who press Ctrl-C twice). The caller then starts the shutdown.
pub async fn leave(
    drain: &Drain,
    period: Duration,
    second_signal: impl std::future::Future<Output = ()>,
) {
    drain.begin();
    if period.is_zero() {
        return;
    }
    info!(
        period_secs = period.as_secs(),
        "draining: readiness fails, serving current viewers until the period ends"
    );
    tokio::select! {
        () = tokio::time::sleep(period) => info!("drain period over"),
        () = second_signal => info!("second termination signal: stopping now"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn leave_fails_readiness_first_and_waits_the_period() {
        let drain = Drain::default();
        let started = tokio::time::Instant::now();
        let d = drain.clone();
        let task = tokio::spawn(async move {
            leave(&d, Duration::from_secs(20), std::future::pending()).await;
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(drain.is_draining());
        assert!(!task.is_finished());
        task.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(20));

        // A second signal ends the wait.
        let drain = Drain::default();
        let started = tokio::time::Instant::now();
        leave(&drain, Duration::from_secs(20), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
        })
        .await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn config_defaults_to_no_drain() {
        let c: DrainConfig = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(c.period_secs, 0);
        assert!(serde_yaml_ng::from_str::<DrainConfig>("{ period: 3 }").is_err());
    }
}
