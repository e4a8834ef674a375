//! Follows every published stream through an internal (non-viewer) hub
//! subscription and keeps its HLS live window in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cmaf::{CmafConfig, CmafSegmenter};
use super::segmenter::{Segmenter, SegmenterConfig};
use crate::config::HlsConfig;
use crate::hub::{Delivery, Hub, PublicationEvent, StreamKey};

/// How long an ended stream's last window stays available (with ENDLIST).
const ENDED_KEEP: Duration = Duration::from_mins(1);

/// One stream's segmenter and which publication feeds it.
struct Entry {
    segmenter: Segmenter,
    /// CMAF parts for LL-HLS, fed the TS segmenter's timeline.
    cmaf: Option<CmafSegmenter>,
    /// Bumped whenever a CMAF part is cut or the stream ends: blocking
    /// reloads of this stream wait on it (per stream, so a part of one
    /// stream wakes only that stream's players).
    changes: tokio::sync::watch::Sender<u64>,
    /// The publication feeding it; an older feeder stops when this moves on.
    epoch: u64,
    ended_at: Option<Instant>,
}

/// Every stream's HLS state. Cheap to clone.
#[derive(Clone)]
pub struct HlsService {
    streams: Arc<Mutex<HashMap<StreamKey, Entry>>>,
    config: SegmenterConfig,
    ll: Option<CmafConfig>,
    hub: Hub,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HlsService {
    /// A service for `hub` that does not follow publications yet (see [`HlsService::start`]).
    pub fn new(hub: Hub, config: &HlsConfig) -> Self {
        Self {
            streams: Arc::new(Mutex::new(HashMap::new())),
            config: SegmenterConfig {
                target_ms: u64::from(config.segment_duration_secs.max(1)) * 1000,
                window: usize::try_from(config.window.max(1)).unwrap_or(6),
            },
            ll: config.ll.enabled.then(|| CmafConfig {
                target_ms: u64::from(config.segment_duration_secs.max(1)) * 1000,
                part_ms: u64::from(config.ll.part_duration_ms),
                window: usize::try_from(config.window.max(1)).unwrap_or(6),
            }),
            hub,
        }
    }

    /// Starts following the hub's publications on `tasks` until `shutdown`.
    pub fn start(&self, tasks: &TaskTracker, shutdown: CancellationToken) {
        let this = self.clone();
        let t = tasks.clone();
        tasks.spawn(async move { this.follow(t, shutdown).await });
    }

    /// The hub this service follows.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    async fn follow(self, tasks: TaskTracker, shutdown: CancellationToken) {
        let mut events = self.hub.publications();
        for key in self.hub.live_streams() {
            self.spawn_feeder(&tasks, key, 0, &shutdown);
        }
        let mut purge = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = purge.tick() => self.purge_ended(),
                ev = events.recv() => match ev {
                    Ok(PublicationEvent::Started { key, epoch }) => self.spawn_feeder(&tasks, key, epoch, &shutdown),
                    Ok(PublicationEvent::Ended { .. }) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "HLS missed publication events");
                        for key in self.hub.live_streams() {
                            if lock(&self.streams).get(&key).is_none_or(|e| e.ended_at.is_some()) {
                                self.spawn_feeder(&tasks, key, 0, &shutdown);
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// Frees the segments of streams that ended a while ago. The entry
    /// (a few counters) stays, so a later publication continues the
    /// timeline and never reuses a segment name a cache may still hold.
    fn purge_ended(&self) {
        let now = Instant::now();
        for e in lock(&self.streams).values_mut() {
            if e.ended_at
                .is_some_and(|t| now.duration_since(t) >= ENDED_KEEP)
            {
                e.segmenter.drop_segments();
                if let Some(c) = e.cmaf.as_mut() {
                    c.drop_segments();
                }
                e.ended_at = None;
            }
        }
    }

    fn spawn_feeder(
        &self,
        tasks: &TaskTracker,
        key: StreamKey,
        epoch: u64,
        shutdown: &CancellationToken,
    ) {
        let Ok(sub) = self.hub.subscribe_internal(&key) else {
            return;
        };
        {
            let mut streams = lock(&self.streams);
            let entry = streams.entry(key.clone()).or_insert_with(|| Entry {
                segmenter: Segmenter::new(self.config),
                cmaf: self.ll.map(CmafSegmenter::new),
                changes: tokio::sync::watch::channel(0).0,
                epoch,
                ended_at: None,
            });
            entry.epoch = epoch;
            entry.ended_at = None;
            let now = SystemTime::now();
            entry.segmenter.start_session(now);
            if let Some(c) = entry.cmaf.as_mut() {
                c.start_session(now);
            }
        }
        let this = self.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move { this.feed(key, epoch, sub, shutdown).await });
    }

    async fn feed(
        self,
        key: StreamKey,
        epoch: u64,
        mut sub: crate::hub::Subscriber,
        shutdown: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(128);
        loop {
            batch.clear();
            let ended = tokio::select! {
                () = shutdown.cancelled() => true,
                r = sub.recv(&mut batch, 128) => r.is_err(),
            };
            let mut streams = lock(&self.streams);
            let Some(entry) = streams.get_mut(&key).filter(|e| e.epoch == epoch) else {
                return; // a newer publication took over
            };
            let mut unpublished = ended;
            let mut changed = false;
            for d in &batch {
                match d {
                    Delivery::Frame(f) => {
                        entry.segmenter.push(&f.tag);
                        if let Some(c) = entry.cmaf.as_mut()
                            && let Some(ms) = entry.segmenter.last_ms()
                        {
                            changed |= c.push(&f.tag, ms);
                        }
                    }
                    Delivery::Unpublished => {
                        unpublished = true;
                        break;
                    }
                    Delivery::Published => {}
                }
            }
            if unpublished {
                entry.segmenter.end_session();
                if let Some(c) = entry.cmaf.as_mut() {
                    c.end_session();
                }
                entry.ended_at = Some(Instant::now());
                entry.changes.send_modify(|n| *n += 1);
                return;
            }
            if changed {
                entry.changes.send_modify(|n| *n += 1);
            }
        }
    }

    /// The playlist of `key`, if the stream has HLS state.
    pub fn playlist(&self, key: &StreamKey) -> Option<String> {
        let streams = lock(&self.streams);
        let e = streams.get(key)?;
        // No segment yet: answer 404 rather than an empty playlist players give up on.
        e.segmenter.window().next()?;
        Some(super::playlist::render(&e.segmenter))
    }

    /// A segment of `key` still in memory.
    pub fn segment(&self, key: &StreamKey, name: &str) -> Option<bytes::Bytes> {
        lock(&self.streams)
            .get(key)?
            .segmenter
            .segment(name)
            .map(|s| s.data.clone())
    }

    /// Runs `f` on `key`'s CMAF segmenter, if LL-HLS is on and the stream has state.
    pub fn with_cmaf<T>(&self, key: &StreamKey, f: impl FnOnce(&CmafSegmenter) -> T) -> Option<T> {
        let streams = lock(&self.streams);
        streams.get(key)?.cmaf.as_ref().map(f)
    }

    /// A receiver that sees a change whenever `key`'s CMAF state moves.
    pub fn changes(&self, key: &StreamKey) -> Option<tokio::sync::watch::Receiver<u64>> {
        lock(&self.streams).get(key).map(|e| e.changes.subscribe())
    }

    /// True if LL-HLS is on.
    pub fn ll_enabled(&self) -> bool {
        self.ll.is_some()
    }

    /// The target duration of `key`'s segments, ms.
    pub fn target_ms(&self) -> u64 {
        self.config.target_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::testdata::stream;
    use crate::hub::HubConfig;

    async fn wait_for(
        service: &HlsService,
        key: &StreamKey,
        what: impl Fn(&str) -> bool,
    ) -> String {
        for _ in 0..200 {
            if let Some(p) = service.playlist(key)
                && what(&p)
            {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("playlist never matched: {:?}", service.playlist(key));
    }

    #[tokio::test]
    async fn follows_publications_through_the_hub() {
        let hub = Hub::new(HubConfig::default());
        let service = HlsService::new(hub.clone(), &HlsConfig::default());
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        service.start(&tasks, shutdown.clone());
        // Let the follower subscribe to publication events.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let key = StreamKey::new("live", "t");
        assert!(service.playlist(&key).is_none());

        let publisher = hub.publish(&key).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        for tag in stream(0, 7000, 1000) {
            publisher.send(tag);
            tokio::task::yield_now().await;
        }
        let p = wait_for(&service, &key, |p| p.contains("seg-4000.ts")).await;
        assert!(p.contains("seg-0.ts") && p.contains("seg-2000.ts"), "{p}");
        assert!(service.segment(&key, "seg-2000.ts").is_some());

        drop(publisher);
        let p = wait_for(&service, &key, |p| p.contains("#EXT-X-ENDLIST")).await;
        assert!(p.contains("seg-6000.ts"), "{p}");

        // Republish: the timeline continues after a discontinuity.
        let publisher = hub.publish(&key).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        for tag in stream(0, 5000, 1000) {
            publisher.send(tag);
            tokio::task::yield_now().await;
        }
        let p = wait_for(&service, &key, |p| p.contains("#EXT-X-DISCONTINUITY\n")).await;
        assert!(!p.contains("#EXT-X-ENDLIST"), "{p}");
        drop(publisher);
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }
}
