//! Play authorization on the HTTP port: a middleware in front of every
//! playback route (HTTP-FLV, HLS playlists and segments, VOD files), on
//! origins and edges, outermost so a refused request costs no upstream
//! pull. Refusals answer 403 with a one-line reason.
//!
//! HLS players fetch segment URIs as the playlist gives them: a playlist
//! asked for with a query hands that query on in every segment URI
//! ([`carry_query`]), while segment names stay as the segmenter made them.

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::{PlayKind, signing};
use crate::edge::http::{LivePath, classify};
use crate::http::ClientAddr;
use crate::server::AppState;

/// What a request path plays: the signed resource and the kind (pure).
pub fn playback_of(path: &str) -> Option<(String, PlayKind)> {
    if let Some(file) = path.strip_prefix(crate::vod::http::PREFIX) {
        return signing::vod_resource(file).map(|r| (r, PlayKind::Vod));
    }
    let live = classify(path)?;
    let kind = match live {
        LivePath::Flv(_) => PlayKind::Flv,
        LivePath::Playlist(_) | LivePath::Segment(_) => PlayKind::Hls,
    };
    let k = live.key();
    Some((format!("{}/{}", k.app, k.name), kind))
}

/// The middleware.
pub async fn check_play(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.play_auth.is_open() {
        return next.run(req).await;
    }
    // Routes match decoded paths: classify the decoded path too, or
    // `/live/ca%6d.flv` would reach `cam` unchecked.
    let path = percent_encoding::percent_decode_str(req.uri().path()).decode_utf8_lossy();
    let Some((resource, kind)) = playback_of(&path) else {
        return next.run(req).await;
    };
    let client = req
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0.ip());
    match state
        .play_auth
        .check(&resource, req.uri().query(), client, kind)
        .await
    {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            state.hub.metrics().play_refused.add(refusal.reason);
            warn!(
                client = %client,
                stream = %resource,
                protocol = kind.as_str(),
                reason = refusal.reason.label(),
                description = %refusal.description,
                "play refused"
            );
            (StatusCode::FORBIDDEN, format!("{}\n", refusal.description)).into_response()
        }
    }
}

/// `playlist` with `query` appended to every URI line that has none (pure).
pub fn carry_query(playlist: &str, query: &str) -> String {
    let mut out = String::with_capacity(playlist.len() + 64 * query.len().min(64));
    for line in playlist.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        if body.is_empty() || body.starts_with('#') || body.contains('?') {
            out.push_str(line);
        } else {
            out.push_str(body);
            out.push('?');
            out.push_str(query);
            out.push_str(&line[body.len()..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_carry_the_playlist_query() {
        let p =
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg-0.ts\n#EXTINF:2.0,\nseg-2000.ts\n";
        let out = carry_query(p, "expires=9&token=abc");
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg-0.ts?expires=9&token=abc\n#EXTINF:2.0,\nseg-2000.ts?expires=9&token=abc\n"
        );
        assert_eq!(
            carry_query("#EXTM3U\r\nseg-1.ts\r\n", "a=1"),
            "#EXTM3U\r\nseg-1.ts?a=1\r\n"
        );
        assert_eq!(
            carry_query("seg-1.ts?x=1\nseg-2.ts", "a=1"),
            "seg-1.ts?x=1\nseg-2.ts?a=1"
        );
    }

    #[test]
    fn playback_paths() {
        assert_eq!(
            playback_of("/live/cam.flv"),
            Some(("live/cam".into(), PlayKind::Flv))
        );
        assert_eq!(
            playback_of("/live/cam/index.m3u8"),
            Some(("live/cam".into(), PlayKind::Hls))
        );
        assert_eq!(
            playback_of("/live/cam/seg-10.ts"),
            Some(("live/cam".into(), PlayKind::Hls))
        );
        assert_eq!(
            playback_of("/vod/recordings/live/a.flv"),
            Some(("vod/recordings/live/a.flv".into(), PlayKind::Vod))
        );
        for p in [
            "/healthz",
            "/readyz",
            "/api/streams",
            "/metrics",
            "/api/stats",
            "/",
        ] {
            assert_eq!(playback_of(p), None, "{p}");
        }
    }
}
