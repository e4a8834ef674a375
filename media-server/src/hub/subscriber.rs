//! A viewer's (or internal consumer's) end of a stream: the GOP snapshot
//! first, then the live ring, with the slow-viewer policy applied here, on
//! the viewer's side, so it never costs the publisher anything.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::Instant;

use super::frame::Frame;
use super::stats::Protocol;
use super::stream::{Event, Stream};
use super::{Hub, StreamKey};

/// A viewer that lagged a whole ring this many times within
/// [`LAG_WINDOW`] is disconnected instead of skipping again.
pub const MAX_LAGS: usize = 3;
/// See [`MAX_LAGS`].
pub const LAG_WINDOW: Duration = Duration::from_secs(30);

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A media or script tag.
    Frame(Arc<Frame>),
    /// A publisher (re)started the stream; sequence headers follow.
    Published,
    /// The publisher went away; the subscriber may keep waiting.
    Unpublished,
}

/// Why a subscription cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// Nobody publishes this stream now.
    #[error("stream {0} is not publishing")]
    NotPublishing(StreamKey),
}

/// Why a subscriber was ended by the hub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriberClosed {
    /// The viewer kept falling a whole queue behind.
    #[error("viewer too slow: fell behind {MAX_LAGS} times within {LAG_WINDOW:?}")]
    TooSlow,
}

/// A subscription. Dropping it ends it.
pub struct Subscriber {
    hub: Hub,
    stream: Arc<Stream>,
    protocol: Protocol,
    rx: Option<broadcast::Receiver<Event>>,
    pending: VecDeque<Delivery>,
    lags: VecDeque<Instant>,
    /// After a lag: drop everything until a keyframe (the snapshot usually provides one).
    skipping: bool,
    live: bool,
    /// Woken for every frame rather than at the stream's releases.
    per_frame: bool,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("key", &self.stream.key)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    pub(super) fn new(hub: Hub, stream: Arc<Stream>, protocol: Protocol) -> Self {
        let (snapshot, rx, live) = stream.join();
        if protocol != Protocol::Internal {
            stream.counters.viewers.add(protocol, 1);
        }
        Self {
            hub,
            stream,
            protocol,
            rx: Some(rx),
            pending: snapshot.into_iter().map(Delivery::Frame).collect(),
            lags: VecDeque::new(),
            skipping: false,
            live,
            per_frame: protocol == Protocol::Internal,
        }
    }

    /// Wakes this subscriber for every frame (an edge's relay pull).
    pub(super) fn per_frame(mut self) -> Self {
        self.per_frame = true;
        self
    }

    /// The stream.
    pub fn key(&self) -> &StreamKey {
        &self.stream.key
    }

    /// True while the stream has a publisher (as far as this subscriber has read).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Counts bytes this subscriber's connection wrote.
    pub fn add_bytes_out(&self, n: u64) {
        self.stream
            .counters
            .bytes_out
            .fetch_add(n, Ordering::Relaxed);
        self.hub.metrics().bytes_out.add(self.protocol, n);
    }

    /// Waits for at least one delivery, then appends everything already
    /// queued (up to `max`) to `out`, so the caller can write it in one go.
    /// Cancel-safe.
    pub async fn recv(
        &mut self,
        out: &mut Vec<Delivery>,
        max: usize,
    ) -> Result<(), SubscriberClosed> {
        let start = out.len();
        let max = max.max(1);
        while out.len() - start < max {
            let Some(d) = self.pending.pop_front() else {
                break;
            };
            out.push(d);
        }
        if self.pending.is_empty() && self.pending.capacity() > 16 {
            // The GOP snapshot is delivered: free its room.
            self.pending = VecDeque::new();
        }
        if out.len() > start {
            return Ok(());
        }
        if !self.per_frame {
            return self.recv_released(out, start, max).await;
        }
        loop {
            let Some(rx) = self.rx.as_mut() else {
                return Err(SubscriberClosed::TooSlow);
            };
            let first = rx.recv().await;
            match first {
                Ok(ev) => self.accept(ev, out),
                Err(RecvError::Lagged(n)) => self.lagged(n)?,
                // The stream holds the sender for as long as this subscriber exists.
                Err(RecvError::Closed) => return Err(SubscriberClosed::TooSlow),
            }
            // Take what is already queued without waiting.
            self.drain(out, start, max)?;
            if out.len() > start {
                return Ok(());
            }
        }
    }

    /// A viewer's wait: for the stream's next release (see
    /// `Stream::release`), then everything in the ring. Registering for
    /// the release before looking at the ring means no frame is missed;
    /// frames sent after a release are taken early, which is harmless.
    async fn recv_released(
        &mut self,
        out: &mut Vec<Delivery>,
        start: usize,
        max: usize,
    ) -> Result<(), SubscriberClosed> {
        let stream = Arc::clone(&self.stream);
        loop {
            let released = stream.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            self.drain(out, start, max)?;
            if out.len() > start {
                return Ok(());
            }
            released.await;
        }
    }

    /// Takes what the ring holds now, up to `max` deliveries in `out`.
    fn drain(
        &mut self,
        out: &mut Vec<Delivery>,
        start: usize,
        max: usize,
    ) -> Result<(), SubscriberClosed> {
        while out.len() - start < max {
            let Some(rx) = self.rx.as_mut() else {
                return Err(SubscriberClosed::TooSlow);
            };
            match rx.try_recv() {
                Ok(ev) => self.accept(ev, out),
                Err(TryRecvError::Lagged(n)) => self.lagged(n)?,
                Err(TryRecvError::Empty) => break,
                // The stream holds the sender for as long as this subscriber exists.
                Err(TryRecvError::Closed) => return Err(SubscriberClosed::TooSlow),
            }
        }
        while out.len() - start < max {
            let Some(d) = self.pending.pop_front() else {
                break;
            };
            out.push(d);
        }
        Ok(())
    }

    fn accept(&mut self, ev: Event, out: &mut Vec<Delivery>) {
        let d = match ev {
            Event::Media(frame) => {
                if self.skipping {
                    if frame.tag.is_keyframe() && !frame.tag.is_sequence_header() {
                        self.skipping = false;
                    } else if !frame.tag.is_sequence_header() {
                        self.count_dropped(1);
                        return;
                    }
                }
                Delivery::Frame(frame)
            }
            Event::Published => {
                self.live = true;
                self.skipping = false;
                Delivery::Published
            }
            Event::Unpublished => {
                self.live = false;
                Delivery::Unpublished
            }
        };
        // Keep order behind anything still pending (a GOP snapshot).
        if self.pending.is_empty() {
            out.push(d);
        } else {
            self.pending.push_back(d);
        }
    }

    fn count_dropped(&self, n: u64) {
        self.stream
            .counters
            .dropped_frames
            .fetch_add(n, Ordering::Relaxed);
        self.hub.metrics().dropped_frames.add(self.protocol, n);
    }

    /// Fell a whole ring behind: skip to the latest keyframe, or give up on
    /// a viewer that keeps doing it.
    fn lagged(&mut self, n: u64) -> Result<(), SubscriberClosed> {
        self.count_dropped(n);
        let now = Instant::now();
        self.lags.push_back(now);
        while self
            .lags
            .front()
            .is_some_and(|t| now.duration_since(*t) > LAG_WINDOW)
        {
            self.lags.pop_front();
        }
        if self.lags.len() > MAX_LAGS {
            self.rx = None;
            self.hub
                .metrics()
                .slow_viewers_dropped
                .add(self.protocol, 1);
            return Err(SubscriberClosed::TooSlow);
        }
        let (snapshot, rx) = self.stream.rejoin();
        self.rx = Some(rx);
        let starts_on_keyframe = snapshot
            .iter()
            .any(|f| f.tag.is_keyframe() && !f.tag.is_sequence_header());
        // Without a keyframe in the cache (audio only, or just cleared) keep
        // what it has; with video, drop until the next keyframe.
        self.skipping = !starts_on_keyframe
            && snapshot
                .iter()
                .any(|f| f.tag.kind == crate::media::TagKind::Video);
        self.pending = snapshot.into_iter().map(Delivery::Frame).collect();
        // The publisher may have left while this viewer was behind: the
        // Unpublished event it skipped must still reach it.
        if !self.stream.is_live() {
            self.live = false;
            self.pending.push_back(Delivery::Unpublished);
        }
        Ok(())
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if self.protocol != Protocol::Internal {
            self.stream.counters.viewers.sub(self.protocol, 1);
        }
        self.rx = None;
        self.hub.maybe_remove(&self.stream);
    }
}
