//! One stream's shared state: publisher flag, GOP cache, the broadcast ring
//! viewers read, counters and HLS sessions.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::frame::Frame;
use super::gop::GopCache;
use super::stats::{Protocol, StreamCounters, audio_codec_name, video_codec_name};
use super::{HubConfig, StreamKey, lock};
use crate::media::TagKind;

/// What flows through a stream's ring.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    Media(Arc<Frame>),
    Published,
    Unpublished,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub publishing: bool,
    pub epoch: u64,
    pub gop: GopCache,
    pub started_at: Option<SystemTime>,
    pub started_instant: Option<Instant>,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    /// (when, `bytes_in` then, last computed kbit/s) for the bitrate estimate.
    pub rate: Option<(Instant, u64, f64)>,
    /// Fired to disconnect this publication's publisher (admin API); a new
    /// one per publication, so it never reaches the next publisher.
    pub kick: tokio_util::sync::CancellationToken,
    /// When viewers were last woken (see [`Stream::release`]).
    pub last_release: Option<Instant>,
    /// Frames went into the ring since then.
    pub unreleased: bool,
    /// A task will release them when the interval is over.
    pub release_armed: bool,
}

pub(crate) struct Stream {
    pub key: StreamKey,
    pub state: Mutex<State>,
    pub tx: broadcast::Sender<Event>,
    pub counters: StreamCounters,
    /// Wakes viewers (not internal consumers) in batches: see [`Stream::release`].
    pub released: tokio::sync::Notify,
    release_interval: Duration,
    hls_sessions: Mutex<HashMap<String, Instant>>,
    hls_window: Duration,
}

/// One stream as `/api/streams` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamInfo {
    /// Application.
    pub app: String,
    /// Stream name.
    pub name: String,
    /// Every playback session: RTMP, HTTP-FLV and recent HLS sessions.
    pub viewers: u64,
    /// The same by protocol (`rtmp`, `flv`, `hls`).
    pub viewers_by_protocol: std::collections::BTreeMap<&'static str, u64>,
    /// Incoming bitrate over the last few seconds, kbit/s.
    pub bitrate_kbps: u64,
    /// Video codec (`h264`, `hevc`, ...), once its sequence header arrived.
    pub video_codec: Option<String>,
    /// Audio codec (`aac`, ...).
    pub audio_codec: Option<String>,
    /// When the publication started (RFC 3339, UTC).
    pub started_at: String,
    /// Media bytes received.
    pub bytes_in: u64,
    /// Bytes sent to viewers.
    pub bytes_out: u64,
    /// Frames skipped by slow viewers.
    pub dropped_frames: u64,
}

impl Stream {
    pub fn new(key: StreamKey, config: &HubConfig) -> Self {
        let (tx, _) = broadcast::channel(config.queue_frames.max(16));
        Self {
            key,
            state: Mutex::new(State::default()),
            tx,
            counters: StreamCounters::default(),
            released: tokio::sync::Notify::new(),
            release_interval: config.release_interval,
            hls_sessions: Mutex::new(HashMap::new()),
            hls_window: Duration::from_secs(config.hls_session_secs),
        }
    }

    pub fn is_live(&self) -> bool {
        lock(&self.state).publishing
    }

    pub fn started_at(&self) -> Option<SystemTime> {
        lock(&self.state).started_at
    }

    /// Nobody publishes, no viewer holds a receiver.
    pub fn is_unused(&self) -> bool {
        !lock(&self.state).publishing && self.tx.receiver_count() == 0
    }

    /// Returns the new epoch, or `None` when someone already publishes.
    pub fn start_publishing(&self) -> Option<u64> {
        let mut st = lock(&self.state);
        if st.publishing {
            return None;
        }
        st.publishing = true;
        st.epoch += 1;
        st.gop = GopCache::default();
        st.started_at = Some(SystemTime::now());
        st.started_instant = Some(Instant::now());
        st.video_codec = None;
        st.audio_codec = None;
        st.rate = None;
        st.kick = tokio_util::sync::CancellationToken::new();
        let _ = self.tx.send(Event::Published);
        st.unreleased = false;
        st.last_release = Some(Instant::now());
        let epoch = st.epoch;
        drop(st);
        self.released.notify_waiters();
        Some(epoch)
    }

    pub fn stop_publishing(&self) {
        let mut st = lock(&self.state);
        st.publishing = false;
        st.gop = GopCache::default();
        let _ = self.tx.send(Event::Unpublished);
        st.unreleased = false;
        drop(st);
        self.released.notify_waiters();
    }

    /// Viewers are woken once per `release_interval` (and at once for a
    /// keyframe, so a waiting player gets its picture without delay), not
    /// for every frame: each wake-up then writes several frames in one
    /// syscall, and all viewers of a stream wake together, so the worker
    /// threads run them in one sweep instead of waking for each viewer's
    /// own timer. Internal consumers (segmenters, recorders) take every
    /// frame as it comes.
    fn release(self: &Arc<Self>, st: &mut State, keyframe: bool) -> bool {
        let now = Instant::now();
        let due = keyframe
            || self.release_interval.is_zero()
            || st
                .last_release
                .is_none_or(|t| now.duration_since(t) >= self.release_interval);
        if due {
            st.unreleased = false;
            st.last_release = Some(now);
            return true;
        }
        st.unreleased = true;
        if !st.release_armed {
            // The publisher may send nothing more for a while (a pause, a
            // slide show): release what came by the end of the interval.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                st.release_armed = true;
                let at = st.last_release.unwrap_or(now) + self.release_interval;
                let stream = Arc::clone(self);
                rt.spawn(async move {
                    tokio::time::sleep_until(at).await;
                    let wake = {
                        let mut st = lock(&stream.state);
                        st.release_armed = false;
                        let wake = st.unreleased;
                        if wake {
                            st.unreleased = false;
                            st.last_release = Some(Instant::now());
                        }
                        wake
                    };
                    if wake {
                        stream.released.notify_waiters();
                    }
                });
            } else {
                st.unreleased = false;
                return true;
            }
        }
        false
    }

    pub fn publish_frame(self: &Arc<Self>, frame: Arc<Frame>) {
        self.counters
            .bytes_in
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        let mut st = lock(&self.state);
        if frame.tag.is_sequence_header() {
            match frame.tag.kind {
                TagKind::Video => st.video_codec = video_codec_name(&frame.tag.data),
                _ => st.audio_codec = audio_codec_name(&frame.tag.data),
            }
        } else if frame.tag.kind == TagKind::Audio && st.audio_codec.is_none() {
            st.audio_codec = audio_codec_name(&frame.tag.data);
        } else if frame.tag.kind == TagKind::Video && st.video_codec.is_none() {
            st.video_codec = video_codec_name(&frame.tag.data);
        }
        st.gop.push(&frame);
        let keyframe = frame.tag.is_keyframe() && !frame.tag.is_sequence_header();
        // Under the state lock so a subscriber's snapshot + receiver never
        // misses or repeats a frame.
        let _ = self.tx.send(Event::Media(frame));
        let wake = self.release(&mut st, keyframe);
        drop(st);
        if wake {
            self.released.notify_waiters();
        }
    }

    /// The GOP snapshot and a receiver positioned right after it.
    pub fn join(&self) -> (Vec<Arc<Frame>>, broadcast::Receiver<Event>, bool) {
        let st = lock(&self.state);
        let snapshot = if st.publishing {
            st.gop.snapshot()
        } else {
            Vec::new()
        };
        (snapshot, self.tx.subscribe(), st.publishing)
    }

    /// The latest keyframe onwards, for a viewer that fell behind: replaces its receiver.
    pub fn rejoin(&self) -> (Vec<Arc<Frame>>, broadcast::Receiver<Event>) {
        let st = lock(&self.state);
        (st.gop.snapshot(), self.tx.subscribe())
    }

    pub fn hls_session_seen(&self, session: &str) {
        let now = Instant::now();
        let mut sessions = lock(&self.hls_sessions);
        if let Some(t) = sessions.get_mut(session) {
            *t = now;
            return;
        }
        // Bound the map: forget expired sessions before adding one.
        if sessions.len() >= 4096 {
            let window = self.hls_window;
            sessions.retain(|_, t| now.duration_since(*t) < window);
            if sessions.len() >= 100_000 {
                return;
            }
        }
        sessions.insert(session.to_owned(), now);
    }

    fn hls_viewers(&self) -> u64 {
        let now = Instant::now();
        let window = self.hls_window;
        let mut sessions = lock(&self.hls_sessions);
        sessions.retain(|_, t| now.duration_since(*t) < window);
        sessions.len() as u64
    }

    /// Every playback session now (RTMP, HTTP-FLV, recent HLS), without
    /// building a whole [`StreamInfo`].
    pub fn viewer_count(&self) -> u64 {
        Protocol::VIEWER
            .iter()
            .map(|p| match p {
                Protocol::Hls => self.hls_viewers(),
                _ => self.counters.viewers.get(*p),
            })
            .sum()
    }

    pub fn info(&self) -> Option<StreamInfo> {
        let bytes_in = self.counters.bytes_in.load(Ordering::Relaxed);
        let (started_at, video_codec, audio_codec, bitrate) = {
            let mut st = lock(&self.state);
            if !st.publishing {
                return None;
            }
            let now = Instant::now();
            let (since, base, last) =
                st.rate
                    .unwrap_or((st.started_instant.unwrap_or(now), 0, 0.0));
            let elapsed = now.duration_since(since).as_secs_f64();
            let rate = if elapsed >= 1.0 {
                #[allow(clippy::cast_precision_loss)]
                let kbps = (bytes_in.saturating_sub(base)) as f64 * 8.0 / 1000.0 / elapsed;
                // Restart the window every few seconds so the figure tracks changes.
                if elapsed >= 5.0 {
                    st.rate = Some((now, bytes_in, kbps));
                }
                kbps
            } else {
                last
            };
            (
                st.started_at,
                st.video_codec.clone(),
                st.audio_codec.clone(),
                rate,
            )
        };
        let mut by = std::collections::BTreeMap::new();
        for p in Protocol::VIEWER {
            let n = match p {
                Protocol::Hls => self.hls_viewers(),
                _ => self.counters.viewers.get(p),
            };
            by.insert(p.as_str(), n);
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let bitrate_kbps = bitrate.round().max(0.0) as u64;
        Some(StreamInfo {
            app: self.key.app.clone(),
            name: self.key.name.clone(),
            viewers: by.values().sum(),
            viewers_by_protocol: by,
            bitrate_kbps,
            video_codec,
            audio_codec,
            started_at: started_at.map(rfc3339).unwrap_or_default(),
            bytes_in,
            bytes_out: self.counters.bytes_out.load(Ordering::Relaxed),
            dropped_frames: self.counters.dropped_frames.load(Ordering::Relaxed),
        })
    }
}

/// `SystemTime` as RFC 3339 UTC with seconds (no date crate needed for this).
#[allow(clippy::many_single_char_names)]
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
    }
}
