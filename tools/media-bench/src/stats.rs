//! Per-viewer counters and their aggregation into a report. Pure: times are
//! milliseconds on the run's clock, passed in by the caller.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ending::{Endings, Moves, Session};
use crate::flv::TagInfo;

/// What one viewer saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ViewerStats {
    /// Viewer index.
    pub id: usize,
    /// When the viewer started connecting (run clock, ms).
    pub started_ms: f64,
    /// Connect time: TCP connect plus the protocol's play request, ms after `started_ms`.
    pub connect_ms: Option<f64>,
    /// First media tag, ms after `started_ms`.
    pub first_tag_ms: Option<f64>,
    /// First video keyframe (the first frame a player can show), ms after `started_ms`.
    pub first_keyframe_ms: Option<f64>,
    /// Bytes read from the socket (protocol overhead included).
    pub bytes: u64,
    /// Run-clock time of the first and last byte read.
    pub first_byte_at_ms: Option<f64>,
    /// Run-clock time of the last byte read.
    pub last_byte_at_ms: Option<f64>,
    /// Video frames (sequence headers excluded).
    pub video_frames: u64,
    /// Audio frames (sequence headers excluded).
    pub audio_frames: u64,
    /// Video keyframes.
    pub keyframes: u64,
    /// Timestamp of the first and newest media tag.
    pub first_ts: Option<u32>,
    /// Timestamp of the newest media tag.
    pub last_ts: Option<u32>,
    /// Run-clock time of the first media tag.
    pub first_media_at_ms: Option<f64>,
    /// Lowest (wall elapsed − timestamp elapsed) seen: the viewer's best pace.
    pub min_delay_ms: Option<f64>,
    /// Latest (wall elapsed − timestamp elapsed) seen.
    pub last_delay_ms: Option<f64>,
    /// Why the viewer stopped before the end of the run, if it did.
    pub error: Option<String>,
    /// Each connection (the first, then reconnects) and how it ended.
    pub sessions: Vec<Session>,
    /// The current connection's play was accepted.
    #[serde(skip)]
    pub session_started: bool,
    /// Keyframes on the current connection.
    #[serde(skip)]
    pub session_keyframes: u64,
    /// The current connection: 0 for the first, n for the n-th reconnect.
    #[serde(skip)]
    pub session_attempt: u32,
}

impl ViewerStats {
    /// A viewer starting at `started_ms`.
    pub fn new(id: usize, started_ms: f64) -> Self {
        Self {
            id,
            started_ms,
            ..Self::default()
        }
    }

    /// Records `n` bytes read at `now_ms`.
    pub fn on_bytes(&mut self, n: usize, now_ms: f64) {
        self.bytes += n as u64;
        self.first_byte_at_ms.get_or_insert(now_ms);
        self.last_byte_at_ms = Some(now_ms);
    }

    /// Starts a new connection (a reconnect): its timestamps restart the
    /// lag measurement, which would otherwise count the gap as lag.
    pub fn begin_session(&mut self, attempt: u32) {
        self.session_attempt = attempt;
        self.session_started = false;
        self.session_keyframes = 0;
        self.first_ts = None;
        self.last_ts = None;
        self.first_media_at_ms = None;
        self.min_delay_ms = None;
        self.last_delay_ms = None;
    }

    /// Records the viewer's play request being accepted.
    pub fn on_connected(&mut self, now_ms: f64) {
        self.session_started = true;
        self.connect_ms.get_or_insert(now_ms - self.started_ms);
    }

    /// Records a tag received at `now_ms`.
    pub fn on_tag(&mut self, tag: &TagInfo, now_ms: f64) {
        if tag.kind == crate::flv::SCRIPT {
            return;
        }
        self.first_tag_ms.get_or_insert(now_ms - self.started_ms);
        if tag.is_video_frame() {
            self.video_frames += 1;
            if tag.keyframe {
                self.keyframes += 1;
                self.session_keyframes += 1;
                self.first_keyframe_ms
                    .get_or_insert(now_ms - self.started_ms);
            }
        } else if tag.is_audio_frame() {
            self.audio_frames += 1;
        }
        let first_ts = *self.first_ts.get_or_insert(tag.timestamp);
        let first_at = *self.first_media_at_ms.get_or_insert(now_ms);
        // Newest timestamp, tolerating the out-of-order audio/video interleave.
        if self.last_ts.is_none_or(|t| tag.timestamp >= t) {
            self.last_ts = Some(tag.timestamp);
            let ts_elapsed = f64::from(tag.timestamp.wrapping_sub(first_ts));
            let delay = (now_ms - first_at) - ts_elapsed;
            self.last_delay_ms = Some(delay);
            self.min_delay_ms = Some(self.min_delay_ms.map_or(delay, |m| m.min(delay)));
        }
    }

    /// Average received bitrate in kbit/s between the first and last byte.
    pub fn bitrate_kbps(&self) -> Option<f64> {
        let span = self.last_byte_at_ms? - self.first_byte_at_ms?;
        #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
        (span > 0.0).then(|| self.bytes as f64 * 8.0 / span)
    }

    /// How far the viewer has fallen behind its own best pace: the growth of
    /// (wall time − stream time) since the moment it was furthest ahead. A
    /// viewer keeping up stays near 0 whatever the server's initial burst.
    pub fn wall_lag_ms(&self) -> Option<f64> {
        Some(self.last_delay_ms? - self.min_delay_ms?)
    }
}

/// min / median / p95 / max of a set of values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Dist {
    /// Smallest value.
    pub min: f64,
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// Largest value.
    pub max: f64,
}

impl Dist {
    /// The distribution of `values`; `None` when empty (NaNs are dropped).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            f64::midpoint(v[n / 2 - 1], v[n / 2])
        };
        // Nearest rank: ceil(0.95 n), 1-based.
        let rank = (n * 95).div_ceil(100).max(1);
        Some(Self {
            min: v[0],
            median,
            p95: v[rank - 1],
            max: v[n - 1],
        })
    }
}

/// The median of `values`, `None` when empty.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    Dist::of(values).map(|d| d.median)
}

/// The aggregated result of one `play` run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The URL played.
    pub url: String,
    /// Viewers asked for.
    pub viewers: usize,
    /// Viewers that received media and stayed to the end.
    pub ok: usize,
    /// Viewers that failed, by reason.
    pub failures: BTreeMap<String, usize>,
    /// Run length in seconds.
    pub duration_s: f64,
    /// Bytes read by all viewers.
    pub total_bytes: u64,
    /// Video frames received by all viewers.
    pub total_video_frames: u64,
    /// total bytes * 8 / run length, Mbit/s.
    pub aggregate_mbps: f64,
    /// Per-viewer average bitrate, kbit/s.
    pub bitrate_kbps: Option<Dist>,
    /// Per-viewer video frames.
    pub video_frames: Option<Dist>,
    /// Per-viewer connect time, ms.
    pub connect_ms: Option<Dist>,
    /// Per-viewer time to the first keyframe, ms.
    pub first_keyframe_ms: Option<Dist>,
    /// Per-viewer lag behind its own best pace at the end, ms.
    pub wall_lag_ms: Option<Dist>,
    /// Per-viewer distance of its newest timestamp from the newest any viewer
    /// saw, ms (meaningful when the server passes publisher timestamps through;
    /// servers that restart each viewer's timeline at 0 inflate it).
    pub behind_newest_ms: Option<Dist>,
    /// How sessions ended and how reconnects went.
    #[serde(flatten)]
    pub endings: Endings,
    /// With `--reconnect`: whether viewers told to leave played again.
    #[serde(flatten)]
    pub moves: Moves,
    /// Each viewer, when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_viewer: Vec<ViewerStats>,
}

impl Report {
    /// Aggregates viewers' stats over a run of `duration_s`.
    pub fn build(url: &str, viewers: &[ViewerStats], duration_s: f64, keep_each: bool) -> Self {
        let mut failures = BTreeMap::new();
        for v in viewers {
            if let Some(reason) = &v.error {
                *failures.entry(failure_class(reason)).or_insert(0) += 1;
            } else if v.video_frames == 0 {
                *failures.entry("no video received".to_owned()).or_insert(0) += 1;
            }
        }
        let ok = viewers
            .iter()
            .filter(|v| v.error.is_none() && v.video_frames > 0)
            .count();
        let total_bytes: u64 = viewers.iter().map(|v| v.bytes).sum();
        let newest = viewers.iter().filter_map(|v| v.last_ts).max();
        #[allow(clippy::cast_precision_loss)] // frame and byte counts far below 2^52
        let report = Self {
            url: url.to_owned(),
            viewers: viewers.len(),
            ok,
            failures,
            duration_s,
            total_bytes,
            total_video_frames: viewers.iter().map(|v| v.video_frames).sum(),
            aggregate_mbps: if duration_s > 0.0 {
                total_bytes as f64 * 8.0 / duration_s / 1e6
            } else {
                0.0
            },
            bitrate_kbps: Dist::of(viewers.iter().filter_map(ViewerStats::bitrate_kbps)),
            video_frames: Dist::of(viewers.iter().map(|v| v.video_frames as f64)),
            connect_ms: Dist::of(viewers.iter().filter_map(|v| v.connect_ms)),
            first_keyframe_ms: Dist::of(viewers.iter().filter_map(|v| v.first_keyframe_ms)),
            wall_lag_ms: Dist::of(viewers.iter().filter_map(ViewerStats::wall_lag_ms)),
            behind_newest_ms: Dist::of(
                viewers
                    .iter()
                    .filter_map(|v| Some(f64::from(newest?.wrapping_sub(v.last_ts?)))),
            ),
            endings: Endings::of(viewers.iter().flat_map(|v| &v.sessions)),
            moves: Moves::default(),
            per_viewer: if keep_each {
                viewers.to_vec()
            } else {
                Vec::new()
            },
        };
        report
    }

    /// A human-readable summary.
    #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {}/{} viewers ok over {:.1} s, {:.1} MB read, {:.1} Mbit/s total",
            self.url,
            self.ok,
            self.viewers,
            self.duration_s,
            (self.total_bytes as f64) / 1e6,
            self.aggregate_mbps
        );
        for (reason, n) in &self.failures {
            let _ = writeln!(s, "  failed: {n} x {reason}");
        }
        let e = &self.endings;
        let _ = writeln!(
            s,
            "  sessions: {} ended told, {} ended cut, {} still playing",
            e.ended_told, e.ended_cut, e.still_playing
        );
        for (code, n) in &e.told_codes {
            let _ = writeln!(s, "    told: {n} x {code}");
        }
        for (reason, n) in &e.cut_reasons {
            let _ = writeln!(s, "    cut: {n} x {reason}");
        }
        if e.reconnects > 0 {
            let _ = writeln!(
                s,
                "  reconnects: {} ({} played again, {} failed, {} unfinished)",
                e.reconnects, e.reconnected_ok, e.reconnect_failed, e.reconnect_unfinished
            );
            let m = &self.moves;
            let _ = writeln!(
                s,
                "  told to leave, then: {} played again, {} lost, {} unfinished",
                m.moved_ok, m.moved_lost, m.moved_unfinished
            );
        }
        let rows = [
            ("bitrate kbit/s", self.bitrate_kbps),
            ("video frames", self.video_frames),
            ("connect ms", self.connect_ms),
            ("first keyframe ms", self.first_keyframe_ms),
            ("wall lag ms", self.wall_lag_ms),
            ("behind newest ms", self.behind_newest_ms),
        ];
        let _ = writeln!(
            s,
            "  {:<18} {:>10} {:>10} {:>10} {:>10}",
            "", "min", "median", "p95", "max"
        );
        for (name, d) in rows {
            if let Some(d) = d {
                let _ = writeln!(
                    s,
                    "  {name:<18} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                    d.min, d.median, d.p95, d.max
                );
            } else {
                let _ = writeln!(s, "  {name:<18} {:>10}", "-");
            }
        }
        s
    }
}

/// Groups error messages into a bounded set of reasons (the text up to the first ':').
fn failure_class(reason: &str) -> String {
    crate::ending::reason_class(reason)
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values chosen to be representable
mod tests {
    use super::*;
    use crate::flv::{AUDIO, VIDEO, classify};

    #[test]
    fn dist_of_odd_even_and_empty() {
        assert_eq!(Dist::of(Vec::<f64>::new()), None);
        let d = Dist::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((d.min, d.median, d.max), (1.0, 2.0, 3.0));
        let d = Dist::of([4.0, 1.0, 3.0, 2.0]).unwrap();
        assert!((d.median - 2.5).abs() < 1e-9);
        let d = Dist::of((1..=100).map(f64::from)).unwrap();
        assert!((d.p95 - 95.0).abs() < 1e-9);
        assert_eq!(Dist::of([f64::NAN, 7.0]).unwrap().median, 7.0);
    }

    fn key(ts: u32) -> TagInfo {
        classify(VIDEO, ts, 100, &[0x17, 1])
    }

    fn inter(ts: u32) -> TagInfo {
        classify(VIDEO, ts, 100, &[0x27, 1])
    }

    #[test]
    fn viewer_counts_frames_and_times() {
        let mut v = ViewerStats::new(0, 1000.0);
        v.on_connected(1010.0);
        v.on_tag(&classify(VIDEO, 0, 40, &[0x17, 0]), 1020.0);
        v.on_tag(&classify(AUDIO, 0, 4, &[0xaf, 0]), 1020.0);
        v.on_tag(&inter(0), 1030.0);
        v.on_tag(&key(33), 1040.0);
        v.on_tag(&classify(AUDIO, 23, 4, &[0xaf, 1]), 1040.0);
        assert_eq!(v.connect_ms, Some(10.0));
        assert_eq!(v.first_tag_ms, Some(20.0));
        assert_eq!(v.first_keyframe_ms, Some(40.0));
        assert_eq!((v.video_frames, v.keyframes, v.audio_frames), (2, 1, 1));
        assert_eq!(v.last_ts, Some(33));
    }

    #[test]
    fn wall_lag_ignores_initial_burst_and_sees_falling_behind() {
        let mut v = ViewerStats::new(0, 0.0);
        // A 2 s GOP arrives at once, then frames at real time.
        for i in 0..60 {
            v.on_tag(&inter(i * 33), 100.0);
        }
        assert!(v.wall_lag_ms().unwrap() < 1.0);
        for i in 60..90 {
            v.on_tag(&inter(i * 33), 100.0 + f64::from(i - 59) * 33.0);
        }
        assert!(v.wall_lag_ms().unwrap() < 1.0);
        // The next frame arrives 500 ms late.
        v.on_tag(&inter(90 * 33), 100.0 + 31.0 * 33.0 + 500.0);
        assert!((v.wall_lag_ms().unwrap() - 500.0).abs() < 1.0);
    }

    #[test]
    fn bitrate_over_byte_span() {
        let mut v = ViewerStats::new(0, 0.0);
        v.on_bytes(1000, 0.0);
        assert_eq!(v.bitrate_kbps(), None);
        v.on_bytes(124_000, 1000.0);
        assert!((v.bitrate_kbps().unwrap() - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn report_aggregates_and_classifies_failures() {
        let mut a = ViewerStats::new(0, 0.0);
        a.on_bytes(125_000, 0.0);
        a.on_bytes(125_000, 1000.0);
        a.on_tag(&key(1000), 10.0);
        let mut b = ViewerStats::new(1, 0.0);
        b.on_tag(&key(400), 10.0);
        b.error = Some("connect: connection refused".into());
        let c = ViewerStats::new(2, 0.0);
        let r = Report::build("rtmp://x/live/a", &[a, b, c], 2.0, false);
        assert_eq!(r.ok, 1);
        assert_eq!(r.failures.get("connect"), Some(&1));
        assert_eq!(r.failures.get("no video received"), Some(&1));
        assert_eq!(r.total_bytes, 250_000);
        assert!((r.aggregate_mbps - 1.0).abs() < 1e-9);
        let behind = r.behind_newest_ms.unwrap();
        assert_eq!((behind.min, behind.max), (0.0, 600.0));
        assert!(r.text().contains("1/3 viewers ok"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ok"], 1);
        assert!(json.get("per_viewer").is_none());
    }

    #[test]
    fn report_carries_session_endings_and_reconnects() {
        use crate::ending::{End, Session};
        let mut a = ViewerStats::new(0, 0.0);
        a.sessions = vec![
            Session {
                attempt: 0,
                started_ms: 0.0,
                played: true,
                end: End::Told {
                    code: "NetStream.Play.UnpublishNotify".into(),
                },
            },
            Session {
                attempt: 1,
                started_ms: 900.0,
                played: true,
                end: End::StillPlaying,
            },
        ];
        let mut b = ViewerStats::new(1, 0.0);
        b.sessions = vec![Session {
            attempt: 0,
            started_ms: 0.0,
            played: true,
            end: End::Cut {
                reason: "closed by server".into(),
            },
        }];
        let r = Report::build("rtmp://x/live/a", &[a, b], 2.0, true);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ended_told"], 1);
        assert_eq!(json["ended_cut"], 1);
        assert_eq!(json["still_playing"], 1);
        assert_eq!(json["told_codes"]["NetStream.Play.UnpublishNotify"], 1);
        assert_eq!(json["cut_reasons"]["closed by server"], 1);
        assert_eq!(json["reconnects"], 1);
        assert_eq!(json["reconnected_ok"], 1);
        assert_eq!(json["reconnect_failed"], 0);
        assert_eq!(json["reconnect_unfinished"], 0);
        assert_eq!(
            json["moved_ok"], 0,
            "filled in by the run when reconnecting"
        );
        assert_eq!(json["per_viewer"][0]["sessions"][1]["end"], "still_playing");
        assert!(json["per_viewer"][0].get("session_started").is_none());
        let text = r.text();
        assert!(
            text.contains("1 ended told, 1 ended cut, 1 still playing"),
            "{text}"
        );
        assert!(
            text.contains("reconnects: 1 (1 played again, 0 failed"),
            "{text}"
        );
    }

    #[test]
    fn a_new_session_restarts_the_lag_measurement() {
        let mut v = ViewerStats::new(0, 0.0);
        v.on_connected(5.0);
        v.on_tag(&key(90_000), 10.0);
        v.begin_session(1);
        assert!(!v.session_started);
        assert_eq!(v.session_keyframes, 0);
        // The republished stream starts again at 0, 3 s later: no lag.
        v.on_tag(&key(0), 3010.0);
        v.on_tag(&inter(33), 3043.0);
        assert!(v.wall_lag_ms().unwrap() < 1.0);
        assert_eq!((v.keyframes, v.session_keyframes), (2, 1));
    }
}
