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
pub struct Streams {
    /// Every live stream.
    pub streams: Vec<StreamInfo>,
}

pub async fn streams(State(state): State<AppState>) -> Json<Streams> {
    Json(Streams {
        streams: state.hub.stream_infos(),
    })
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
    let text = super::metrics::render(state.hub.metrics(), &state.hub.stream_infos());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
