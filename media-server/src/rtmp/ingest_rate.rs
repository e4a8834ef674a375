//! The publish bitrate cap (`limits.max_publish_bitrate`): a token bucket
//! over the media bytes one publisher sends, filled at the cap and holding
//! [`BURST_SECS`] of it, so keyframes and a reconnecting encoder catching up
//! pass while a publisher that keeps sending faster (a file pushed faster
//! than real time, a flood) runs it dry. Pure: the caller passes the time.
//!
//! Over the cap the connection is closed rather than throttled: a live
//! publisher faster than real time on average is broken or hostile, and
//! throttling it (not reading its socket) would leave it connected with an
//! ever-growing delay that viewers see as stale video, while a disconnect
//! is logged, counted and visible to whoever runs the encoder.

use std::time::Instant;

/// Seconds of the cap a publisher may send above it in a burst.
pub const BURST_SECS: u64 = 5;

/// One publisher's bucket.
#[derive(Debug, Clone)]
pub struct IngestMeter {
    /// Bytes per second.
    rate: u64,
    /// Bucket size, bytes.
    burst: u64,
    tokens: u64,
    last: Instant,
}

impl IngestMeter {
    /// A full bucket for a cap of `bits_per_sec` (0 means no cap: the
    /// caller makes no meter then).
    pub fn new(bits_per_sec: u64, now: Instant) -> Self {
        let rate = (bits_per_sec / 8).max(1);
        let burst = rate.saturating_mul(BURST_SECS);
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes `bytes` sent at `now`; false when the publisher is over the cap.
    pub fn take(&mut self, bytes: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        let refill = elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000;
        if refill > 0 {
            self.last = now;
            let refill = u64::try_from(refill).unwrap_or(u64::MAX);
            self.tokens = self.tokens.saturating_add(refill).min(self.burst);
        }
        let bytes = bytes as u64;
        if bytes > self.tokens {
            self.tokens = 0;
            return false;
        }
        self.tokens -= bytes;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn real_time_at_the_cap_passes_for_ever() {
        let t0 = Instant::now();
        // 8 Mbit/s = 1 MB/s, sent as 25 frames of 40 kB a second.
        let mut m = IngestMeter::new(8_000_000, t0);
        for i in 1..=25 * 600u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 40);
            assert!(m.take(40_000, now), "frame {i} refused");
        }
    }

    #[test]
    fn a_burst_passes_a_sustained_excess_does_not() {
        let t0 = Instant::now();
        let mut m = IngestMeter::new(8_000_000, t0);
        // A 4 MB keyframe burst at once: within the 5 s bucket.
        assert!(m.take(4_000_000, t0));
        // Then twice the cap: the bucket empties within seconds.
        let mut refused_at = None;
        for i in 1..=200u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 100);
            if !m.take(200_000, now) {
                refused_at = Some(i);
                break;
            }
        }
        let at = refused_at.expect("twice the cap was never refused");
        assert!((5..=30).contains(&at), "refused after {at} steps");
    }

    #[test]
    fn a_flood_in_no_time_is_refused_after_the_bucket() {
        let t0 = Instant::now();
        let mut m = IngestMeter::new(1_000_000, t0);
        let sent: usize = (0..1000).take_while(|_| m.take(10_000, t0)).count() * 10_000;
        assert_eq!(sent, 620_000, "bucket of 5 s at 125 kB/s");
    }
}
