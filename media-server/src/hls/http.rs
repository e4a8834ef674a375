//! `GET|HEAD /APP/NAME/index.m3u8` and `/APP/NAME/seg-N.ts`.
//!
//! Playlists change every segment: `no-cache`. Segments never change once
//! named (their names come from the stream's timeline): `immutable` with a
//! long max-age, so caches and CDNs keep them. Each request marks the HLS
//! session (client address + user agent) as a viewer of the stream.

use std::hash::{DefaultHasher, Hash, Hasher};

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

use super::service::HlsService;
use crate::config::check_name;
use crate::http::ClientAddr;
use crate::http_file::{Body, FileRequest, FileResponse, axum_glue};
use crate::hub::StreamKey;
use crate::server::AppState;

/// The playlist's file name.
pub const PLAYLIST: &str = "index.m3u8";

/// The HLS routes, with the service started on the server's task tracker.
pub fn routes(state: &AppState) -> Router {
    let service = HlsService::new(state.hub.clone(), &state.config.hls);
    if state.config.hls.enabled {
        service.start(&state.tasks, state.shutdown.clone());
    }
    Router::new()
        .route("/{app}/{name}/{file}", get(handle))
        .with_state(service)
}

async fn handle(
    State(service): State<HlsService>,
    Path((app, name, file)): Path<(String, String, String)>,
    ConnectInfo(client): ConnectInfo<ClientAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let req = axum_glue::request(&method, &uri, &headers, Some(client.0.ip()));
    if super::ll_http::is_ll_file(&file) {
        return super::ll_http::answer(&service, &app, &name, &file, uri.query(), &req)
            .await
            .into_response();
    }
    let mut response = answer(&service, &app, &name, &file, &req);
    // Segment URIs carry the playlist's query (a signed URL's token), so
    // players that resolve them against the playlist keep being allowed.
    if let (Some(query), Body::Bytes(text)) = (uri.query(), &response.body)
        && file == PLAYLIST
        && response.status == 200
        && !query.is_empty()
    {
        let rewritten =
            crate::auth::http::carry_query(&String::from_utf8_lossy(text), query).into_bytes();
        for (name, value) in &mut response.headers {
            if *name == "content-length" {
                *value = rewritten.len().to_string();
            }
        }
        response.body = Body::Bytes(Bytes::from(rewritten));
    }
    response.into_response()
}

/// A stable id of one player: its address and user agent.
pub(crate) fn session_id(req: &FileRequest<'_>) -> String {
    let mut h = DefaultHasher::new();
    req.client.hash(&mut h);
    req.user_agent.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Answers one HLS request (pure apart from the service's state).
pub fn answer(
    service: &HlsService,
    app: &str,
    name: &str,
    file: &str,
    req: &FileRequest<'_>,
) -> FileResponse {
    let head = req.is_head();
    if check_name(app).is_err() || check_name(name).is_err() {
        return FileResponse::text(404, "not found\n", head);
    }
    let key = StreamKey::new(app, name);
    let (body, content_type, cache) = if file == PLAYLIST {
        let Some(text) = service.playlist(&key) else {
            return FileResponse::text(404, "no such live stream\n", head);
        };
        (
            Bytes::from(text),
            "application/vnd.apple.mpegurl",
            "no-cache",
        )
    } else if file
        .strip_prefix("seg-")
        .and_then(|f| f.strip_suffix(".ts"))
        .is_some()
    {
        let Some(data) = service.segment(&key, file) else {
            return FileResponse::text(404, "no such segment\n", head);
        };
        (data, "video/mp2t", "public, max-age=31536000, immutable")
    } else {
        return FileResponse::text(404, "not found\n", head);
    };
    service.hub().hls_session_seen(&key, &session_id(req));
    if !head {
        service.hub().hls_bytes_out(&key, body.len() as u64);
    }
    FileResponse {
        status: 200,
        headers: vec![
            ("content-type", content_type.to_owned()),
            ("content-length", body.len().to_string()),
            ("cache-control", cache.to_owned()),
            ("access-control-allow-origin", "*".to_owned()),
        ],
        body: if head { Body::Empty } else { Body::Bytes(body) },
    }
}
