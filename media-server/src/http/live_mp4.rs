//! `GET /APP/NAME.mp4`: the live stream as fragmented MP4 over a chunked
//! HTTP response, for Media Source Extensions players: the init segment,
//! then one fragment per video frame (with the audio received before it),
//! from the GOP cache's keyframe on. Each fragment has a `prft` box with
//! the wall-clock time this server received its first frame, so a player
//! can show its latency. Counted as a viewer like HTTP-FLV (the hub's
//! `flv` protocol: progressive HTTP). The play-auth middleware covers it
//! (`edge::http::classify` maps `.mp4` like `.flv`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::config::check_name;
use crate::fmp4::{Fragmenter, FragmenterConfig};
use crate::hub::{Delivery, Protocol, StreamKey, Subscriber};
use crate::server::AppState;

struct Mp4Body {
    sub: Subscriber,
    fragmenter: Fragmenter,
    init_due: bool,
    pending: VecDeque<Bytes>,
    deliveries: Vec<Delivery>,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    done: bool,
}

impl Mp4Body {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                self.sub.add_bytes_out(b.len() as u64);
                return Some(b);
            }
            if self.done {
                return None;
            }
            tokio::select! {
                r = self.sub.recv(&mut self.deliveries, 256) => {
                    if r.is_err() {
                        return None;
                    }
                }
                () = self.cancelled.as_mut() => return None,
            }
            let now = SystemTime::now();
            for d in std::mem::take(&mut self.deliveries) {
                match d {
                    Delivery::Frame(f) => {
                        let part =
                            self.fragmenter
                                .push(&f.tag, u64::from(f.tag.timestamp), Some(now));
                        self.init_due |= self.fragmenter.take_tracks_changed();
                        if let Some(p) = part {
                            if std::mem::take(&mut self.init_due) {
                                match self.fragmenter.tracks().init_segment() {
                                    Ok(init) => self.pending.push_back(Bytes::from(init)),
                                    Err(e) => {
                                        tracing::warn!(error = %e, "fMP4 init segment");
                                        self.done = true;
                                    }
                                }
                            }
                            self.pending.push_back(p.data);
                        }
                    }
                    Delivery::Unpublished => self.done = true,
                    Delivery::Published => {}
                }
            }
        }
    }
}

/// `GET /{app}/{name}.mp4`.
pub fn play(state: &AppState, app: &str, name: &str) -> Response {
    let not_found = |what: &str| (StatusCode::NOT_FOUND, format!("{what}\n")).into_response();
    if state.config.app(app).is_none() {
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
    let body = Mp4Body {
        sub,
        fragmenter: Fragmenter::new(FragmenterConfig {
            part_ms: 0,
            segment_ms: None,
            prft: true,
        }),
        init_due: false,
        pending: VecDeque::new(),
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
            (header::CONTENT_TYPE, "video/mp4"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
