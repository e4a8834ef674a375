//! Pass-through: an object too large for both tiers (over `disk_bytes` and
//! the memory limit) is not cached; each request for it is sent upstream
//! on its own (method, `Range` and conditionals forwarded) and the
//! upstream's answer streamed to the client as it arrives.

use std::sync::Arc;

use http_body_util::BodyExt;

use super::Inner;
use super::fetch::FetchError;
use super::metrics::CacheMetrics;
use crate::http_file::{Body, FileRequest, FileResponse};

/// Request headers passed on to the upstream.
const FORWARDED: [&str; 4] = ["range", "if-range", "if-none-match", "if-modified-since"];

/// The request headers of `req` to forward upstream.
pub fn forwarded<'a>(req: &FileRequest<'a>) -> Vec<(&'static str, &'a str)> {
    let values = [
        req.range,
        req.if_range,
        req.if_none_match,
        req.if_modified_since,
    ];
    FORWARDED
        .into_iter()
        .zip(values)
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect()
}

/// Answers `req` for `key` straight from the upstream, counted as a
/// pass-through (request, and body bytes as they stream).
pub(super) async fn pass_through(
    inner: &Arc<Inner>,
    key: &str,
    req: &FileRequest<'_>,
) -> Result<FileResponse, FetchError> {
    let m = &inner.metrics;
    CacheMetrics::add(&m.pass_through, 1);
    let counted = |requests: u64, bytes: u64| {
        CacheMetrics::add(&m.upstream_requests, requests);
        CacheMetrics::add(&m.upstream_bytes, bytes);
    };
    let passed = inner
        .fetcher
        .pass_through(req.is_head(), key, &forwarded(req), &counted)
        .await?;
    let mut headers = passed.headers;
    headers.push(("x-cache", "PASS".to_owned()));
    let len = headers
        .iter()
        .find(|(n, _)| *n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let shared = Arc::clone(inner);
    let body = passed.body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            let n = data.len() as u64;
            CacheMetrics::add(&shared.metrics.upstream_bytes, n);
            CacheMetrics::add(&shared.metrics.pass_through_bytes, n);
        }
        frame
    });
    Ok(FileResponse {
        status: passed.status,
        headers,
        body: if req.is_head() {
            Body::Empty
        } else {
            Body::Stream {
                body: body.boxed_unsync(),
                len,
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_and_conditionals_are_forwarded() {
        let req = FileRequest {
            method: "GET",
            path: "/vod/x.mp4",
            range: Some("bytes=0-9"),
            if_none_match: Some("\"a\""),
            user_agent: Some("ua"),
            ..FileRequest::default()
        };
        assert_eq!(
            forwarded(&req),
            [("range", "bytes=0-9"), ("if-none-match", "\"a\"")]
        );
        assert!(forwarded(&FileRequest::default()).is_empty());
    }
}
