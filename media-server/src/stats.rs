//! `/api/stats`: one small document per server for the operator's autoscaler
//! (total viewers and egress bits per second), the egress a rate over the
//! last [`WINDOW`] computed from the byte counters (the hub's live protocols,
//! HTTP VOD on origins, the cache's answers on edges), sampled every second.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::hub::Protocol;
use crate::server::AppState;

/// The egress rate is measured over this window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// How often the byte counters are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Samples of the total bytes sent to viewers, newest last.
#[derive(Debug, Default)]
pub struct EgressMeter {
    samples: Mutex<VecDeque<(Instant, u64)>>,
    /// Bytes of HTTP VOD bodies an origin sent (the hub counts live media;
    /// an edge's cache counts its own answers).
    vod_bytes: AtomicU64,
}

impl EgressMeter {
    /// Counts `n` bytes of VOD body sent.
    pub fn add_vod(&self, n: u64) {
        self.vod_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// VOD body bytes sent so far.
    pub fn vod_bytes(&self) -> u64 {
        self.vod_bytes.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, u64)>> {
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a sample; keeps the newest sample at or before the window's start.
    pub fn record(&self, now: Instant, total_bytes: u64) {
        let mut samples = self.lock();
        samples.push_back((now, total_bytes));
        while samples.len() > 2
            && samples
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
        {
            samples.pop_front();
        }
    }

    /// Bits per second between the oldest and newest sample (0 until two exist).
    pub fn bits_per_second(&self) -> u64 {
        let samples = self.lock();
        match (samples.front(), samples.back()) {
            (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => {
                let secs = t1.duration_since(*t0).as_secs_f64();
                #[allow(
                    clippy::cast_precision_loss,
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss
                )]
                let bps = (b1.saturating_sub(*b0) as f64 * 8.0 / secs).round() as u64;
                bps
            }
            _ => 0,
        }
    }
}

/// Bytes written to viewers so far: live protocols, HTTP VOD, and the
/// edge cache's answers (VOD through an edge).
pub fn bytes_out(state: &AppState) -> u64 {
    let m = state.hub.metrics();
    let live: u64 = Protocol::VIEWER.iter().map(|p| m.bytes_out.get(*p)).sum();
    let cached = state
        .cache
        .as_ref()
        .map_or(0, |c| c.metrics().bytes_served());
    live + state.egress.vod_bytes() + cached
}

/// Samples the byte counters every second until shutdown.
pub fn spawn_sampler(state: &AppState) {
    let st = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => st.egress.record(Instant::now(), bytes_out(&st)),
                () = st.shutdown.cancelled() => return,
            }
        }
    });
}

/// The `/api/stats` document.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Playback sessions on this server: RTMP, HTTP-FLV and recent HLS sessions.
    pub viewers: u64,
    /// Live streams.
    pub streams: u64,
    /// Bytes per second sent to viewers over the last `window_secs`, times 8.
    pub egress_bits_per_second: u64,
    /// The window of the rate.
    pub window_secs: u64,
    /// Bytes sent to viewers since start.
    pub bytes_out: u64,
    /// True once the server started draining (it is leaving).
    pub draining: bool,
}

/// The current stats.
pub fn current(state: &AppState) -> Stats {
    let infos = state.hub.stream_infos();
    Stats {
        viewers: infos.iter().map(|s| s.viewers).sum(),
        streams: infos.len() as u64,
        egress_bits_per_second: state.egress.bits_per_second(),
        window_secs: WINDOW.as_secs(),
        bytes_out: bytes_out(state),
        draining: state.drain.is_draining(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rate_over_the_window() {
        let m = EgressMeter::default();
        let t0 = Instant::now();
        assert_eq!(m.bits_per_second(), 0);
        m.record(t0, 0);
        assert_eq!(m.bits_per_second(), 0);
        // 125,000 bytes a second = 1 Mbit/s.
        for s in 1..=30u64 {
            m.record(t0 + Duration::from_secs(s), s * 125_000);
        }
        assert_eq!(m.bits_per_second(), 1_000_000);
        // The old samples left the window: a change shows within it.
        for s in 31..=40u64 {
            m.record(
                t0 + Duration::from_secs(s),
                30 * 125_000 + (s - 30) * 250_000,
            );
        }
        assert_eq!(m.bits_per_second(), 2_000_000);
        assert!(m.lock().len() <= 12);
    }
}
