//! HTTP-FLV: `GET /APP/NAME.flv` answers the FLV header, then the stream
//! from the GOP cache on (metadata, sequence headers, last keyframe), then
//! live tags, until the publisher leaves, the viewer falls hopelessly
//! behind, or the server shuts down. Each tag is encoded once per frame
//! (`Frame::flv_tag`) and the same `Bytes` goes to every viewer.

use std::collections::VecDeque;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::pin::Pin;

use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::debug;

use crate::config::check_name;
use crate::hub::{Delivery, Protocol, StreamKey, Subscriber};
use crate::server::AppState;

struct FlvBody {
    sub: Subscriber,
    pending: VecDeque<Bytes>,
    deliveries: Vec<Delivery>,
    /// Made once: a cancellation waiter registered per call would cost a
    /// lock on the shared token for every batch of every viewer.
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
}

impl FlvBody {
    /// The next buffer to send, `None` at the end of the response.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                self.sub.add_bytes_out(b.len() as u64);
                return Some(b);
            }
            if self.done {
                return None;
            }
            // Room for the GOP burst on join is not kept for the whole response.
            if self.pending.capacity() > 64 {
                self.pending = VecDeque::new();
            }
            if self.deliveries.capacity() > 64 {
                self.deliveries = Vec::new();
            }
            tokio::select! {
                // The hub wakes viewers in batches (`playback.write_interval_ms`).
                r = self.sub.recv(&mut self.deliveries, 1024) => {
                    if let Err(e) = r {
                        debug!(stream = %self.sub.key(), reason = %e, "HTTP-FLV viewer dropped");
                        return None;
                    }
                }
                () = self.cancelled.as_mut() => return None,
            }
            for d in self.deliveries.drain(..) {
                match d {
                    Delivery::Frame(f) => {
                        self.pending.push_back(f.flv_tag().clone());
                    }
                    // One FLV response is one publication.
                    Delivery::Unpublished => self.done = true,
                    Delivery::Published => {}
                }
            }
        }
    }
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{what}\n")).into_response()
}

/// `GET /{app}/{name}.flv`.
pub async fn play(
    State(state): State<AppState>,
    Path((app, file)): Path<(String, String)>,
) -> Response {
    if let Some(name) = file.strip_suffix(".mp4") {
        return super::live_mp4::play(&state, &app, name);
    }
    let Some(name) = file.strip_suffix(".flv") else {
        return not_found("not found");
    };
    if state.config.app(&app).is_none() {
        return not_found("unknown application");
    }
    if check_name(name).is_err() {
        return not_found("invalid stream name");
    }
    let key = StreamKey::new(app, name);
    let sub = match state.hub.subscribe_live(&key, Protocol::Flv) {
        Ok(s) => s,
        Err(e) => return not_found(&e.to_string()),
    };
    let body = FlvBody {
        sub,
        pending: VecDeque::from([Bytes::from_static(&FLV_HEADER)]),
        deliveries: Vec::new(),
        cancelled: Box::pin(state.shutdown.clone().cancelled_owned()),
        done: false,
    };
    let stream = futures_util::stream::unfold(body, |mut b| async move {
        b.next()
            .await
            .map(|bytes| (Ok::<_, std::io::Error>(bytes), b))
    });
    (
        [
            (header::CONTENT_TYPE, "video/x-flv"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

const FLV_HEADER: [u8; crate::flv::FILE_HEADER_LEN] =
    [b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0];
