//! The HTTP side of live relay on an edge: a middleware in front of the
//! HTTP-FLV (`/APP/NAME.flv`) and HLS playlist (`/APP/NAME/index.m3u8`)
//! routes. When the stream is not live here it makes the edge pull it
//! (the request waits, bounded) or, in `redirect` mode on a non-owner,
//! answers 302 to the owner edge. An HLS playlist exists only once the
//! first segment is cut, so a playlist request waits for that too.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::Edge;
use crate::config::{BalancingMode, check_name};
use crate::hub::StreamKey;

/// What a request path asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LivePath {
    /// `/APP/NAME.flv`.
    Flv(StreamKey),
    /// `/APP/NAME/index.m3u8`.
    Playlist(StreamKey),
    /// `/APP/NAME/seg-N.ts`.
    Segment(StreamKey),
}

impl LivePath {
    /// The stream asked for.
    pub fn key(&self) -> &StreamKey {
        match self {
            Self::Flv(k) | Self::Playlist(k) | Self::Segment(k) => k,
        }
    }
}

/// Classifies a request path (pure). `/vod/...` and anything else: `None`.
pub fn classify(path: &str) -> Option<LivePath> {
    let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let ok = |s: &str| check_name(s).is_ok() && s != "vod";
    match parts.as_slice() {
        [app, file] if ok(app) => {
            // `.mp4` is the live fMP4 stream: pulled on demand like HTTP-FLV.
            let name = file
                .strip_suffix(".flv")
                .or_else(|| file.strip_suffix(".mp4"))?;
            check_name(name).ok()?;
            Some(LivePath::Flv(StreamKey::new(*app, name)))
        }
        [app, name, file] if ok(app) && check_name(name).is_ok() => {
            let key = StreamKey::new(*app, *name);
            if *file == crate::hls::http::PLAYLIST || *file == crate::hls::ll_playlist::PLAYLIST {
                Some(LivePath::Playlist(key))
            } else if crate::hls::ll_http::is_ll_file(file)
                || file
                    .strip_prefix("seg-")
                    .and_then(|f| f.strip_suffix(".ts"))
                    .is_some()
            {
                Some(LivePath::Segment(key))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// How often a playlist request looks again for the first segment.
const PLAYLIST_POLL: Duration = Duration::from_millis(200);

/// The middleware (see the module docs).
pub async fn on_demand(State(edge): State<Edge>, req: Request, next: Next) -> Response {
    let Some(what) = classify(req.uri().path()) else {
        return next.run(req).await;
    };
    let key = what.key().clone();
    let live = edge.inner.hub.is_live(&key);
    if !live
        && edge.mode() == BalancingMode::Redirect
        && let Some(owner) = edge.owner_elsewhere(&key).await
    {
        edge.metrics()
            .redirects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pq = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_owned(), ToString::to_string);
        return (
            StatusCode::FOUND,
            [(header::LOCATION, format!("http://{}{pq}", owner.addr))],
        )
            .into_response();
    }
    if matches!(what, LivePath::Segment(_)) {
        // Segments are named by the origin's timeline: one not cut here is
        // not made by pulling now.
        return next.run(req).await;
    }
    if !live && let Err(e) = edge.ensure_live(&key).await {
        let status = if matches!(e, super::EdgeError::Busy) {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::NOT_FOUND
        };
        return (status, format!("{e}\n")).into_response();
    }
    if !matches!(what, LivePath::Playlist(_)) {
        return next.run(req).await;
    }
    // Ask the HLS route again until the first segment is there.
    let (parts, _) = req.into_parts();
    let deadline = Instant::now() + super::VIEWER_WAIT;
    loop {
        let again = Request::from_parts(parts.clone(), Body::empty());
        let resp = next.clone().run(again).await;
        if resp.status() != StatusCode::NOT_FOUND || Instant::now() >= deadline {
            return resp;
        }
        if !edge.inner.hub.is_live(&key) {
            return resp;
        }
        tokio::time::sleep(PLAYLIST_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_live_paths() {
        let k = StreamKey::new("live", "cam");
        assert_eq!(classify("/live/cam.flv"), Some(LivePath::Flv(k.clone())));
        assert_eq!(
            classify("/live/cam/index.m3u8"),
            Some(LivePath::Playlist(k.clone()))
        );
        assert_eq!(
            classify("/live/cam/seg-4000.ts"),
            Some(LivePath::Segment(k.clone()))
        );
        assert_eq!(classify("/live/cam.mp4"), Some(LivePath::Flv(k.clone())));
        assert_eq!(
            classify("/live/cam/ll.m3u8"),
            Some(LivePath::Playlist(k.clone()))
        );
        for f in ["init.mp4", "seg-2000.m4s", "part-2500.m4s"] {
            assert_eq!(
                classify(&format!("/live/cam/{f}")),
                Some(LivePath::Segment(k.clone()))
            );
        }
        for p in [
            "/vod/a.flv",
            "/vod/x/index.m3u8",
            "/api/streams",
            "/healthz",
            "/live/cam",
            "/live/../x.flv",
            "/a/b/c/d.flv",
            "/live/.x.flv",
        ] {
            assert_eq!(classify(p), None, "{p}");
        }
    }
}
