//! `/api/streams`, `/healthz`, `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::hub::StreamInfo;
use crate::server::AppState;

/// The `/api/streams` document.
#[derive(Debug, Serialize)]
#[allow(clippy::struct_field_names)] // `streams` is the document's key
pub struct Streams {
    /// `origin` or `edge` (an edge pulling from this server learns whether
    /// it may find streams not listed yet).
    pub role: &'static str,
    /// The RTMP listener's port (for edges pulling from this server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtmp_port: Option<u16>,
    /// Every live stream.
    pub streams: Vec<StreamEntry>,
}

/// One stream of `/api/streams`.
#[derive(Debug, Serialize)]
pub struct StreamEntry {
    /// The hub's view of it.
    #[serde(flatten)]
    pub info: StreamInfo,
    /// On an edge, where a relayed stream comes from (`rtmp://HOST:PORT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

pub async fn streams(State(state): State<AppState>) -> Json<Streams> {
    let edge = state.edge.as_ref();
    let streams = state
        .hub
        .stream_infos()
        .into_iter()
        .map(|info| StreamEntry {
            upstream: edge
                .and_then(|e| e.upstream_of(&crate::hub::StreamKey::new(&*info.app, &*info.name))),
            info,
        })
        .collect();
    Json(Streams {
        role: state.config.role.as_str(),
        rtmp_port: state.rtmp_local.get().map(std::net::SocketAddr::port),
        streams,
    })
}

/// Readiness: 503 from the moment the server drains, so it leaves its Services
/// while `/healthz` (liveness) stays 200.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.drain.is_draining() || state.shutdown.is_cancelled() {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (axum::http::StatusCode::OK, "ready\n")
    }
}

/// `/api/stats`: viewers and egress of this server (read by the operator's autoscaler).
pub async fn stats(State(state): State<AppState>) -> Json<crate::stats::Stats> {
    Json(crate::stats::current(&state))
}

pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.shutdown.is_cancelled() {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n",
        )
    } else {
        (axum::http::StatusCode::OK, "ok\n")
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = super::metrics::render(state.hub.metrics(), &state.hub.stream_infos());
    if let Some(cache) = &state.cache {
        cache.render_metrics(&mut text);
    }
    if let Some(edge) = &state.edge {
        text.push_str(&edge.render_metrics());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
