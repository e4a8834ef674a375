//! The stream hub: where publishers and viewers of every protocol meet.
//!
//! Streams are keyed by (app, name). One publisher per stream; a second is
//! refused with [`PublishError::AlreadyPublishing`]. Each stream has one
//! bounded broadcast ring of `Arc<Frame>` that every viewer reads at its own
//! pace, so media is never copied per viewer and the publisher never waits:
//! a viewer that falls a whole ring behind skips to the latest keyframe
//! (counted as dropped frames), and one that keeps falling behind is dropped.
//! A GOP cache gives a new viewer metadata, sequence headers and the GOP
//! since the last keyframe at once.

mod frame;
mod gop;
mod stats;
mod stream;
mod subscriber;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

pub use frame::Frame;
pub use gop::GopCache;
pub use stats::{Metrics, PerProtocol, Protocol, StreamCounters};
pub use stream::StreamInfo;
pub use subscriber::{
    Delivery, LAG_WINDOW, MAX_LAGS, SubscribeError, Subscriber, SubscriberClosed,
};

use stream::Stream;

/// A stream's identity: the application and the stream name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// Application (`live`).
    pub app: String,
    /// Stream name.
    pub name: String,
}

impl StreamKey {
    /// A key from its parts.
    pub fn new(app: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            app: app.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.name)
    }
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Someone already publishes this stream.
    #[error("stream {0} already publishing")]
    AlreadyPublishing(StreamKey),
    /// The hub is shutting down.
    #[error("server shutting down")]
    ShuttingDown,
}

/// A publication starting or ending, for internal consumers (HLS, recorder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicationEvent {
    /// A publisher started; `epoch` counts publications of this key (1, 2, ...).
    Started {
        /// The stream.
        key: StreamKey,
        /// Publication number of this key since the process started.
        epoch: u64,
    },
    /// The publisher went away.
    Ended {
        /// The stream.
        key: StreamKey,
        /// The publication that ended.
        epoch: u64,
    },
}

/// How often a stream wakes its viewers by default: each wake-up then
/// writes about 6 video and 9 audio frames (at 30 fps) in one vectored
/// write instead of one, for a delay players hide in their buffer anyway.
pub const RELEASE_INTERVAL: Duration =
    Duration::from_millis(crate::config::DEFAULT_WRITE_INTERVAL_MS);

/// Hub settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Frames in each stream's broadcast ring (the per-viewer queue bound).
    pub queue_frames: usize,
    /// Seconds an HLS session counts as a viewer after its last request.
    pub hls_session_secs: u64,
    /// How often viewers are woken for new media (keyframes wake them at
    /// once); zero wakes them for every frame.
    pub release_interval: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue_frames: 512,
            hls_session_secs: 30,
            release_interval: RELEASE_INTERVAL,
        }
    }
}

/// The hub. Cheap to clone; all clones are the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    config: HubConfig,
    streams: Mutex<HashMap<StreamKey, Arc<Stream>>>,
    publications: broadcast::Sender<PublicationEvent>,
    metrics: Arc<Metrics>,
    closing: std::sync::atomic::AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a hub lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(config: HubConfig) -> Self {
        let (publications, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                config,
                streams: Mutex::new(HashMap::new()),
                publications,
                metrics: Arc::new(Metrics::default()),
                closing: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Process-wide counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    fn stream_entry(&self, key: &StreamKey) -> Arc<Stream> {
        let mut streams = lock(&self.inner.streams);
        Arc::clone(
            streams
                .entry(key.clone())
                .or_insert_with(|| Arc::new(Stream::new(key.clone(), &self.inner.config))),
        )
    }

    /// Starts publishing `key`. The returned [`Publisher`] ends the
    /// publication when dropped.
    pub fn publish(&self, key: &StreamKey) -> Result<Publisher, PublishError> {
        if self
            .inner
            .closing
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(PublishError::ShuttingDown);
        }
        let stream = self.stream_entry(key);
        let Some(epoch) = stream.start_publishing() else {
            self.inner
                .metrics
                .publish_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(PublishError::AlreadyPublishing(key.clone()));
        };
        let _ = self.inner.publications.send(PublicationEvent::Started {
            key: key.clone(),
            epoch,
        });
        let kick = lock(&stream.state).kick.clone();
        Ok(Publisher {
            hub: self.clone(),
            stream,
            epoch,
            kick,
        })
    }

    /// Subscribes a viewer. The stream need not be live yet: the viewer
    /// waits for a publisher (RTMP players do that).
    pub fn subscribe(&self, key: &StreamKey, protocol: Protocol) -> Subscriber {
        let stream = self.stream_entry(key);
        Subscriber::new(self.clone(), stream, protocol)
    }

    /// Subscribes an edge's relay pull: counted as an RTMP viewer, but
    /// woken for every frame like an internal consumer, so each tier of
    /// edges does not add its own batching delay.
    pub fn subscribe_relay(&self, key: &StreamKey) -> Subscriber {
        let stream = self.stream_entry(key);
        Subscriber::new(self.clone(), stream, Protocol::Rtmp).per_frame()
    }

    /// Subscribes a viewer only if the stream is live now (HTTP-FLV answers 404 otherwise).
    pub fn subscribe_live(
        &self,
        key: &StreamKey,
        protocol: Protocol,
    ) -> Result<Subscriber, SubscribeError> {
        let stream = lock(&self.inner.streams).get(key).cloned();
        match stream {
            Some(s) if s.is_live() => Ok(Subscriber::new(self.clone(), s, protocol)),
            _ => Err(SubscribeError::NotPublishing(key.clone())),
        }
    }

    /// Subscribes an in-process consumer (HLS segmenter, recorder) to a live
    /// stream; it is not counted as a viewer.
    pub fn subscribe_internal(&self, key: &StreamKey) -> Result<Subscriber, SubscribeError> {
        self.subscribe_live(key, Protocol::Internal)
    }

    /// Events of publications starting and ending, from now on. Pair with
    /// [`Hub::live_streams`] to also see those already running.
    pub fn publications(&self) -> broadcast::Receiver<PublicationEvent> {
        self.inner.publications.subscribe()
    }

    /// Keys of streams that are live now.
    pub fn live_streams(&self) -> Vec<StreamKey> {
        let streams = lock(&self.inner.streams);
        let mut keys: Vec<StreamKey> = streams
            .values()
            .filter(|s| s.is_live())
            .map(|s| s.key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// True when `key` is live now.
    pub fn is_live(&self, key: &StreamKey) -> bool {
        lock(&self.inner.streams)
            .get(key)
            .is_some_and(|s| s.is_live())
    }

    /// Playback sessions of `key` now (RTMP, HTTP-FLV, recent HLS); 0 when
    /// nobody publishes or watches it. Cheap: edges ask every second per relay.
    pub fn viewers(&self, key: &StreamKey) -> u64 {
        let stream = lock(&self.inner.streams).get(key).cloned();
        stream.map_or(0, |s| s.viewer_count())
    }

    /// Records an HLS request of `session` (any stable id of one player, e.g.
    /// a hash of address and user agent) for `key`; it counts as a viewer
    /// for `hls_session_secs` after its last request.
    pub fn hls_session_seen(&self, key: &StreamKey, session: &str) {
        if let Some(stream) = lock(&self.inner.streams).get(key) {
            stream.hls_session_seen(session);
        }
    }

    /// Adds bytes sent over HLS for `key` (playlists and segments).
    pub fn hls_bytes_out(&self, key: &StreamKey, bytes: u64) {
        self.inner.metrics.bytes_out.add(Protocol::Hls, bytes);
        if let Some(stream) = lock(&self.inner.streams).get(key) {
            stream
                .counters
                .bytes_out
                .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A snapshot of every live stream for `/api/streams`, sorted by key.
    pub fn stream_infos(&self) -> Vec<StreamInfo> {
        let streams: Vec<Arc<Stream>> = lock(&self.inner.streams).values().cloned().collect();
        let mut infos: Vec<StreamInfo> = streams.iter().filter_map(|s| s.info()).collect();
        infos.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
        infos
    }

    /// Asks the publisher of `key` to disconnect (its connection watches
    /// [`Publisher::kicked`]); false when nobody publishes it.
    pub fn disconnect_publisher(&self, key: &StreamKey) -> bool {
        let stream = lock(&self.inner.streams).get(key).cloned();
        let Some(stream) = stream else { return false };
        let st = lock(&stream.state);
        if st.publishing {
            st.kick.cancel();
        }
        st.publishing
    }

    /// Refuses new publishers from now on (used on shutdown; the
    /// connections end the existing publications themselves).
    pub fn close(&self) {
        self.inner
            .closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Drops the stream entry when nobody publishes or watches it any more.
    fn maybe_remove(&self, stream: &Arc<Stream>) {
        let mut streams = lock(&self.inner.streams);
        if stream.is_unused()
            && streams
                .get(&stream.key)
                .is_some_and(|s| Arc::ptr_eq(s, stream))
        {
            streams.remove(&stream.key);
        }
    }
}

/// The right to publish one stream; dropping it ends the publication.
pub struct Publisher {
    hub: Hub,
    stream: Arc<Stream>,
    epoch: u64,
    kick: tokio_util::sync::CancellationToken,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("key", &self.stream.key)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Hands a tag to every viewer. Never waits.
    pub fn send(&self, tag: crate::media::Tag) {
        let len = tag.data.len() as u64;
        self.hub
            .inner
            .metrics
            .bytes_in
            .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        self.stream.publish_frame(Arc::new(Frame::new(tag)));
    }

    /// The stream published.
    pub fn key(&self) -> &StreamKey {
        &self.stream.key
    }

    /// This publication's number.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// When the publication started.
    pub fn started_at(&self) -> SystemTime {
        self.stream.started_at().unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// Resolves once [`Hub::disconnect_publisher`] asked this publication
    /// to end; the owner then drops the publisher and closes its peer.
    pub fn kicked(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.kick.clone().cancelled_owned()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stream.stop_publishing();
        let _ = self.hub.inner.publications.send(PublicationEvent::Ended {
            key: self.stream.key.clone(),
            epoch: self.epoch,
        });
        self.hub.maybe_remove(&self.stream);
    }
}

#[cfg(test)]
mod tests;
