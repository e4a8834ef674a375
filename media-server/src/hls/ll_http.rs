//! `GET|HEAD /APP/NAME/ll.m3u8`, `init.mp4`, `seg-MS.m4s`, `part-MS.m4s`:
//! low-latency HLS over CMAF.
//!
//! A playlist request with `_HLS_msn` (and `_HLS_part`) is held until that
//! segment (part) is in the playlist, at most three target durations (then
//! 503); one asking too far ahead gets 400 at once (RFC 8216bis 6.2.5.2).
//! A request for the part being filled (the preload hint) or one later is
//! held until it is finished. Segments and parts never change once named:
//! `immutable`; the playlist and init segment: `no-cache`.
//! Play authorization: these paths are classified by `edge::http::classify`,
//! which the play-auth middleware uses too, so they get the same check.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::ll_playlist::{self, Blocking, INIT, PLAYLIST};
use super::service::HlsService;
use crate::config::check_name;
use crate::http_file::{Body, FileRequest, FileResponse};
use crate::hub::StreamKey;

/// True for a file name this module serves.
pub fn is_ll_file(file: &str) -> bool {
    file == PLAYLIST || file == INIT || part_ms(file).is_some() || segment_ms(file).is_some()
}

fn segment_ms(file: &str) -> Option<u64> {
    file.strip_prefix("seg-")?
        .strip_suffix(".m4s")?
        .parse()
        .ok()
}

fn part_ms(file: &str) -> Option<u64> {
    file.strip_prefix("part-")?
        .strip_suffix(".m4s")?
        .parse()
        .ok()
}

/// The blocking-reload query: `_HLS_msn`, `_HLS_part`, `_HLS_skip`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// `_HLS_msn`.
    pub msn: Option<u64>,
    /// `_HLS_part`.
    pub part: Option<u64>,
    /// `_HLS_skip=YES` (or `v2`).
    pub skip: bool,
    /// The rest of the query (e.g. a playback token), carried to every URI.
    pub carry: String,
}

impl Directives {
    /// Parses a query string; `None` if a directive has a malformed value.
    pub fn parse(query: Option<&str>) -> Option<Self> {
        let mut d = Self::default();
        for pair in query.unwrap_or("").split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "_HLS_msn" => d.msn = Some(v.parse().ok()?),
                "_HLS_part" => d.part = Some(v.parse().ok()?),
                "_HLS_skip" => d.skip = matches!(v, "YES" | "v2"),
                "" => {}
                k if k.starts_with("_HLS_") => {}
                _ => {
                    if !d.carry.is_empty() {
                        d.carry.push('&');
                    }
                    d.carry.push_str(pair);
                }
            }
        }
        Some(d)
    }
}

fn ok(body: Bytes, content_type: &str, cache: &str, head: bool) -> FileResponse {
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

/// Waits for the stream's next CMAF change, or the deadline; false at the deadline.
async fn changed(rx: &mut tokio::sync::watch::Receiver<u64>, deadline: Instant) -> bool {
    matches!(
        tokio::time::timeout_at(deadline, rx.changed()).await,
        Ok(Ok(()))
    )
}

/// Answers one LL-HLS request.
pub async fn answer(
    service: &HlsService,
    app: &str,
    name: &str,
    file: &str,
    query: Option<&str>,
    req: &FileRequest<'_>,
) -> FileResponse {
    let head = req.is_head();
    if check_name(app).is_err() || check_name(name).is_err() || !service.ll_enabled() {
        return FileResponse::text(404, "not found\n", head);
    }
    let key = StreamKey::new(app, name);
    let Some(mut rx) = service.changes(&key) else {
        return FileResponse::text(404, "no such live stream\n", head);
    };
    let hold = Duration::from_millis(3 * service.target_ms().max(1000));
    let deadline = Instant::now() + hold;
    let response = if file == PLAYLIST {
        let Some(d) = Directives::parse(query) else {
            return FileResponse::text(400, "bad _HLS_ directive\n", head);
        };
        loop {
            rx.borrow_and_update();
            let state = service.with_cmaf(&key, |c| {
                if c.window().next().is_none() && c.open_segment().is_none() {
                    return None;
                }
                Some(match ll_playlist::blocking(c, d.msn, d.part) {
                    Blocking::Ready => Ok(ll_playlist::render(c, d.skip, &d.carry)),
                    other => Err(other),
                })
            });
            match state.flatten() {
                None => return FileResponse::text(404, "no such live stream\n", head),
                Some(Ok(text)) => {
                    break ok(
                        Bytes::from(text),
                        "application/vnd.apple.mpegurl",
                        "no-cache",
                        head,
                    );
                }
                Some(Err(Blocking::BadRequest)) => {
                    return FileResponse::text(400, "_HLS_msn/_HLS_part too far ahead\n", head);
                }
                Some(Err(_)) => {
                    if !changed(&mut rx, deadline).await {
                        return FileResponse::text(503, "not available in time\n", head);
                    }
                }
            }
        }
    } else if file == INIT {
        let Some(init) = service.with_cmaf(&key, |c| c.init().cloned()).flatten() else {
            return FileResponse::text(404, "no init segment\n", head);
        };
        ok(init, "video/mp4", "no-cache", head)
    } else {
        let want_part = part_ms(file);
        loop {
            rx.borrow_and_update();
            // Found, or whether to wait: a part at or after the one being filled.
            let state = service.with_cmaf(&key, |c| {
                c.file(file).ok_or_else(|| {
                    want_part.is_some_and(|ms| c.next_part_ms().is_some_and(|open| ms >= open))
                })
            });
            match state {
                Some(Ok(data)) => {
                    break ok(
                        data,
                        "video/mp4",
                        "public, max-age=31536000, immutable",
                        head,
                    );
                }
                Some(Err(true)) if changed(&mut rx, deadline).await => {}
                _ => return FileResponse::text(404, "no such segment\n", head),
            }
        }
    };
    service
        .hub()
        .hls_session_seen(&key, &super::http::session_id(req));
    if !head && let Body::Bytes(b) = &response.body {
        service.hub().hls_bytes_out(&key, b.len() as u64);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_directives() {
        assert!(is_ll_file("ll.m3u8") && is_ll_file("init.mp4"));
        assert!(is_ll_file("seg-2000.m4s") && is_ll_file("part-2500.m4s"));
        assert!(!is_ll_file("seg-2000.ts") && !is_ll_file("part-x.m4s"));
        assert_eq!(
            Directives::parse(Some("_HLS_msn=4&_HLS_part=2&_HLS_skip=YES&token=a")),
            Some(Directives {
                msn: Some(4),
                part: Some(2),
                skip: true,
                carry: "token=a".into(),
            })
        );
        assert_eq!(Directives::parse(Some("_HLS_msn=x")), None);
        assert_eq!(Directives::parse(None), Some(Directives::default()));
    }
}
