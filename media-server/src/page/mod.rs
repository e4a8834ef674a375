//! The status page and the browser player on the public port: `/` lists
//! the streams live on this server (the hub's names and rates; on an edge
//! what it relays now, never where from), unless play authorization is on,
//! when it lists none; `/watch/APP/NAME` plays one
//! with our own script (`assets/player.js`: Media Source Extensions over
//! the live fMP4 stream `/APP/NAME.mp4`), `/assets/*` serves the script
//! and the style sheet compiled into the binary.
//!
//! Headers: every answer has a strict Content-Security-Policy (no inline
//! script, media from here or `blob:` for MSE) and `nosniff`; HTML is
//! `no-cache`, assets are cached for a day under an `ETag` and linked with
//! `?v=ETAG` so a new binary's assets are fetched at once.

pub mod html;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::config::check_name;
use crate::server::AppState;

/// The policy of every answer of this module.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; media-src 'self' blob:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How long browsers keep an asset (it is revalidated by `ETag` after).
pub const ASSET_MAX_AGE_SECS: u32 = 86_400;

/// One asset compiled into the binary.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
    etag: &'static str,
}

/// FNV-1a of the bytes, at compile time: the asset's version.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// `"` + 16 hex digits + `"`, at compile time.
const fn etag_of(bytes: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h = fnv1a(bytes);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

const PLAYER_JS: &str = include_str!("../../assets/player.js");
const PAGE_CSS: &str = include_str!("../../assets/page.css");
const PLAYER_ETAG_BYTES: [u8; 18] = etag_of(PLAYER_JS.as_bytes());
const PAGE_ETAG_BYTES: [u8; 18] = etag_of(PAGE_CSS.as_bytes());

fn etag_str(b: &'static [u8; 18]) -> &'static str {
    // Hex digits and quotes only: always UTF-8.
    std::str::from_utf8(b).unwrap_or("\"0\"")
}

fn assets() -> [Asset; 2] {
    [
        Asset {
            path: "player.js",
            content_type: "text/javascript; charset=utf-8",
            body: PLAYER_JS,
            etag: etag_str(&PLAYER_ETAG_BYTES),
        },
        Asset {
            path: "page.css",
            content_type: "text/css; charset=utf-8",
            body: PAGE_CSS,
            etag: etag_str(&PAGE_ETAG_BYTES),
        },
    ]
}

/// `/assets/FILE?v=VERSION` (the version is the `ETag` without quotes).
fn asset_url(file: &str) -> String {
    let etag = assets()
        .iter()
        .find(|a| a.path == file)
        .map_or("", |a| a.etag.trim_matches('"'));
    format!("/assets/{file}?v={etag}")
}

/// The routes of this module (`/`, `/watch/{app}/{name}`, `/assets/{file}`).
pub fn routes(state: &AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/watch/{app}/{name}", get(watch))
        .route("/assets/{file}", get(asset))
        .with_state(state.clone())
}

fn secure(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

fn html(status: StatusCode, body: String) -> Response {
    secure(
        (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
    )
}

/// The index's data: the hub's stream list (as `/api/streams`, without
/// upstreams) and the server's totals (as `/api/stats`). With play
/// authorization on, no names: the list is the admin port's then.
fn index_data(state: &AppState) -> html::Index {
    let totals = crate::stats::current(state);
    let hidden = !state.play_auth.is_open();
    let infos = if hidden {
        Vec::new()
    } else {
        state.hub.stream_infos()
    };
    let rows = infos
        .into_iter()
        .map(|i| html::Row {
            app: i.app,
            name: i.name,
            viewers: i.viewers,
            bitrate_kbps: i.bitrate_kbps,
            video_codec: i.video_codec,
            audio_codec: i.audio_codec,
        })
        .collect();
    html::Index {
        role: state.config.role.as_str(),
        hidden,
        rows,
        viewers: totals.viewers,
        egress_bps: totals.egress_bits_per_second,
    }
}

async fn index(State(state): State<AppState>) -> Response {
    html(
        StatusCode::OK,
        html::index(&index_data(&state), &asset_url("page.css")),
    )
}

async fn watch(
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    if state.config.app(&app).is_none() || check_name(&name).is_err() {
        return html(
            StatusCode::NOT_FOUND,
            format!(
                "<!DOCTYPE html>\n<title>Not found</title>\n<p>No such stream: {}/{}</p>\n",
                html::escape(&app),
                html::escape(&name)
            ),
        );
    }
    // The page is served whether or not the stream is live now: the
    // player waits for it (and a refused token shows on the media request).
    html(
        StatusCode::OK,
        html::watch(
            &app,
            &name,
            query.as_deref(),
            &asset_url("page.css"),
            &asset_url("player.js"),
        ),
    )
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let all = assets();
    let Some(a) = all.iter().find(|a| a.path == file) else {
        return secure((StatusCode::NOT_FOUND, "no such asset\n").into_response());
    };
    let cache = format!("public, max-age={ASSET_MAX_AGE_SECS}");
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag || t.trim() == "*"));
    if fresh {
        return secure(
            (
                StatusCode::NOT_MODIFIED,
                [
                    (header::ETAG, a.etag),
                    (header::CACHE_CONTROL, cache.as_str()),
                ],
            )
                .into_response(),
        );
    }
    secure(
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::ETAG, a.etag),
                (header::CACHE_CONTROL, cache.as_str()),
            ],
            a.body,
        )
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_hex_and_follow_the_bytes() {
        let a = etag_of(b"one");
        let b = etag_of(b"two");
        assert_ne!(a, b);
        let s = std::str::from_utf8(&a).unwrap();
        assert_eq!(s.len(), 18);
        assert!(s.starts_with('"') && s.ends_with('"'));
        assert!(s[1..17].bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(asset_url("player.js").starts_with("/assets/player.js?v="));
    }

    fn state_with(auth: crate::config::AuthConfig) -> AppState {
        let config = crate::config::Config {
            auth,
            ..crate::config::Config::default()
        };
        AppState::new(config, tokio_util::sync::CancellationToken::new())
    }

    #[test]
    fn the_index_lists_names_only_while_playback_is_open() {
        let open = state_with(crate::config::AuthConfig::default());
        let _p = open
            .hub
            .publish(&crate::hub::StreamKey::new("live", "cam"))
            .unwrap();
        let page = index_data(&open);
        assert!(!page.hidden);
        assert_eq!(page.rows.len(), 1);
        assert_eq!(page.rows[0].name, "cam");

        let signed = state_with(crate::config::AuthConfig {
            play_signing_secret_file: Some("secret".into()),
            ..crate::config::AuthConfig::default()
        });
        let _p = signed
            .hub
            .publish(&crate::hub::StreamKey::new("live", "cam"))
            .unwrap();
        let page = index_data(&signed);
        assert!(page.hidden);
        assert!(page.rows.is_empty());
        let body = html::index(&page, "/assets/page.css");
        assert!(!body.contains("cam"), "{body}");
        assert!(body.contains("Stream list hidden"), "{body}");
    }

    #[test]
    fn csp_forbids_inline_script_and_allows_mse() {
        assert!(CSP.contains("default-src 'self'"));
        assert!(CSP.contains("media-src 'self' blob:"));
        assert!(!CSP.contains("unsafe-inline"));
        assert!(!CSP.contains("unsafe-eval"));
    }
}
