//! The public HTTP server: HTTP-FLV (`/APP/NAME.flv`), `/healthz`,
//! `/readyz`, and the routes of the HLS and VOD modules merged in (the API
//! and metrics are on the admin listener, `crate::admin`).
//! axum (on hyper) for routing and HTTP/1.1; the media paths are thin.

pub(crate) mod api;
mod flv;
mod listener;
mod live_mp4;
pub mod metrics;
pub(crate) mod request_head;

use std::time::Duration;

use axum::Router;
use axum::routing::get;

pub use listener::{ClientAddr, HeadLimits, LimitedListener, LimitedStream};

use crate::server::AppState;

/// Every route of the origin's HTTP server.
pub fn router(state: &AppState) -> Router {
    let own = Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/{app}/{file}", get(flv::play))
        .with_state(state.clone());
    // The HLS (`/{app}/{name}/{file}`) and VOD (`/vod/{*path}`) modules
    // bring their own routes, state applied; HLS also starts its follower.
    own.merge(crate::hls::routes(state))
        .merge(crate::vod::routes(state))
        .merge(crate::page::routes(state))
}

/// Serves HTTP on `listener` until `state.shutdown` fires (open HTTP-FLV
/// responses end on it too), then lets requests in flight finish.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let listener = LimitedListener::new(
        listener,
        std::sync::Arc::clone(&state.connections),
        std::sync::Arc::clone(state.hub.metrics()),
        Duration::from_secs(state.config.limits.idle_timeout_secs),
    )
    .per_ip(std::sync::Arc::clone(&state.per_ip))
    .request_heads(HeadLimits {
        max_bytes: state.config.limits.max_http_head_bytes,
        timeout: Duration::from_secs(state.config.limits.http_head_timeout_secs),
    });
    let shutdown = state.shutdown.clone();
    let mut app = router(&state);
    // On an edge, a live path of a stream not here yet pulls it first.
    if let Some(edge) = &state.edge {
        app = app.layer(axum::middleware::from_fn_with_state(
            edge.clone(),
            crate::edge::http::on_demand,
        ));
    }
    // Outermost: a refused play costs no edge pull (`auth::http`).
    app = app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::auth::http::check_play,
    ));
    let app = app.into_make_service_with_connect_info::<ClientAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
