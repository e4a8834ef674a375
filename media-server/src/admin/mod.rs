//! The admin listener (`admin.listen`, default port 8081): `/api/*`,
//! `/metrics`, `/healthz` and `/readyz`, apart from the public playback
//! port. It is meant to be reachable from inside the cluster only (the
//! operator, Prometheus, edges locating streams): reads are open, and every
//! endpoint that changes a stream needs the Bearer token of
//! `admin.token_file` ([`token`]).

pub mod token;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use tracing::{info, warn};

use crate::http::{ClientAddr, HeadLimits, LimitedListener, api};
use crate::hub::StreamKey;
use crate::server::AppState;

/// Connections the admin listener holds at once: its own budget, so a
/// flood of viewers on the public port never locks out the operator and
/// Prometheus, and the reverse.
pub const MAX_CONNECTIONS: usize = 256;

/// Connections one address holds on the admin listener at most (lower when
/// `limits.max_connections_per_ip` is): one pod cannot take the whole
/// budget. The operator, Prometheus and an edge each need a few.
pub const MAX_CONNECTIONS_PER_IP: usize = 32;

/// Every route of the admin listener.
pub fn router(state: &AppState) -> Router {
    let mutating = Router::new()
        .route("/api/streams/{app}/{name}", delete(disconnect_stream))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/api/streams", get(api::streams))
        .route("/api/stats", get(api::stats))
        .route("/metrics", get(api::metrics))
        .merge(mutating)
        .with_state(state.clone())
}

/// Serves the admin routes on `listener` until `state.shutdown` fires.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let listener = LimitedListener::new(
        listener,
        Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
        // Admin connections are not playback: kept out of the public
        // listener's `http_connections` counters.
        Arc::default(),
        Duration::from_secs(state.config.limits.idle_timeout_secs),
    )
    // The public listener's head bounds and idle close, and a per-address
    // limit of its own (public connections do not count against it).
    .per_ip(crate::peer_limits::PerIpLimit::new(admin_per_ip(
        state.config.limits.max_connections_per_ip,
    )))
    .request_heads(HeadLimits {
        max_bytes: state.config.limits.max_http_head_bytes,
        timeout: Duration::from_secs(state.config.limits.http_head_timeout_secs),
    });
    let app = router(&state).into_make_service_with_connect_info::<ClientAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(state.shutdown.clone().cancelled_owned())
        .await
}

/// The admin listener's per-address limit for `limits.max_connections_per_ip`.
fn admin_per_ip(public: usize) -> usize {
    if public == 0 {
        MAX_CONNECTIONS_PER_IP
    } else {
        public.min(MAX_CONNECTIONS_PER_IP)
    }
}

/// Lets a mutating request through only with the admin token.
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let file = state.config.admin.token_file.clone();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let verdict =
        tokio::task::spawn_blocking(move || token::check(file.as_deref(), auth.as_deref())).await;
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<ClientAddr>>()
        .map(|c| c.0.0);
    let challenge = |error: &str| {
        let value = if error.is_empty() {
            "Bearer realm=\"fleetcast-admin\"".to_owned()
        } else {
            format!("Bearer realm=\"fleetcast-admin\", error=\"{error}\"")
        };
        [(header::WWW_AUTHENTICATE, value)]
    };
    match verdict {
        Ok(token::Verdict::Allowed) => next.run(req).await,
        Ok(token::Verdict::NotConfigured) => {
            (StatusCode::FORBIDDEN, "no admin token configured\n").into_response()
        }
        Ok(token::Verdict::Unavailable(why)) => {
            warn!(reason = %why, "admin request refused: no usable admin token");
            (StatusCode::FORBIDDEN, format!("{why}\n")).into_response()
        }
        Ok(token::Verdict::Missing) => (
            StatusCode::UNAUTHORIZED,
            challenge(""),
            "admin token required\n",
        )
            .into_response(),
        Ok(token::Verdict::Wrong) => {
            warn!(peer = ?peer, path = %req.uri().path(), "admin request with a wrong token");
            (
                StatusCode::UNAUTHORIZED,
                challenge("invalid_token"),
                "invalid admin token\n",
            )
                .into_response()
        }
        Err(e) => {
            warn!(error = %e, "admin token check failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "token check failed\n").into_response()
        }
    }
}

/// `DELETE /api/streams/APP/NAME`: disconnects the stream's publisher (on
/// an edge, a relayed stream's relay); 204, or 404 when it is not live here.
async fn disconnect_stream(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> Response {
    for n in [&app, &name] {
        if let Err(why) = crate::config::check_name(n) {
            return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
        }
    }
    let key = StreamKey::new(app, name);
    if state.hub.disconnect_publisher(&key) {
        info!(stream = %key, "publisher disconnected by the admin API");
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::NOT_FOUND, format!("{key} is not live here\n")).into_response()
    }
}
