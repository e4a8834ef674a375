//! A cached object as the answer to one request, with the same Range, 206,
//! 416, `ETag`, If-Range, If-None-Match and HEAD semantics the origin's VOD
//! files have (the rules themselves are `crate::range`'s).

use std::time::SystemTime;

use tokio::io::AsyncSeekExt;

use super::metrics::{CacheMetrics, Tier};
use super::{Data, Object, policy};
use crate::http_file::{Body, FileRequest, FileResponse, Selected, select_range};
use crate::range::{if_none_match, if_range_matches, not_modified_since};

/// How the answer was found, for the `x-cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served without asking the upstream.
    Hit,
    /// Fetched from the upstream for this request (or a coalesced one).
    Miss,
    /// Revalidated with the upstream (304) for this request.
    Revalidated,
    /// Served stale: the upstream could not be asked.
    Stale,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Revalidated => "REVALIDATED",
            Self::Stale => "STALE",
        }
    }
}

/// The answer to `req` from `object`; `None` when its file was evicted
/// before it could be opened (ask the cache again).
pub async fn respond(
    object: &Object,
    req: &FileRequest<'_>,
    outcome: Outcome,
    metrics: &CacheMetrics,
) -> Option<FileResponse> {
    let meta = &object.meta;
    let len = meta.len;
    let modified = meta
        .last_modified
        .as_deref()
        .and_then(|d| httpdate::parse_http_date(d).ok());
    let mut headers = vec![
        ("content-type", meta.content_type.clone()),
        ("accept-ranges", "bytes".to_owned()),
        (
            "cache-control",
            meta.cache_control
                .clone()
                .unwrap_or_else(|| policy::default_cache_control(meta.class).to_owned()),
        ),
        ("x-cache", outcome.as_str().to_owned()),
    ];
    if let Some(tag) = &meta.etag {
        headers.push(("etag", tag.clone()));
    }
    if let Some(lm) = &meta.last_modified {
        headers.push(("last-modified", lm.clone()));
    }
    // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    let not_modified = match (
        req.if_none_match,
        req.if_modified_since,
        &meta.etag,
        modified,
    ) {
        (Some(inm), _, Some(tag), _) => if_none_match(inm, tag),
        (None, Some(ims), _, Some(m)) => not_modified_since(ims, m),
        _ => false,
    };
    if not_modified {
        headers.retain(|(n, _)| *n != "content-type" && *n != "accept-ranges");
        return Some(FileResponse {
            status: 304,
            headers,
            body: Body::Empty,
        });
    }
    let Selected {
        status,
        start,
        count,
    } = match select_range(
        req,
        len,
        |ir| if_range_ok(ir, meta.etag.as_deref(), modified),
        &mut headers,
    ) {
        Ok(selected) => selected,
        Err(unsatisfiable) => return Some(*unsatisfiable),
    };
    if req.is_head() || count == 0 {
        return Some(FileResponse {
            status,
            headers,
            body: Body::Empty,
        });
    }
    let body = match body(object, start, count, metrics).await? {
        Ok(body) => body,
        Err(error) => return Some(error),
    };
    Some(FileResponse {
        status,
        headers,
        body,
    })
}

/// `count` bytes from `start` of the object's data; `None` when its file
/// was evicted before it could be pinned.
async fn body(
    object: &Object,
    start: u64,
    count: u64,
    metrics: &CacheMetrics,
) -> Option<Result<Body, FileResponse>> {
    Some(Ok(match &object.data {
        Data::Memory(bytes) => {
            CacheMetrics::add(&metrics.bytes_served_memory, count);
            let (s, e) = (usize::try_from(start), usize::try_from(start + count));
            match (s, e) {
                (Ok(s), Ok(e)) if e <= bytes.len() => Body::Bytes(bytes.slice(s..e)),
                _ => {
                    return Some(Err(FileResponse::text(
                        500,
                        "cache object shorter than its length\n",
                        false,
                    )));
                }
            }
        }
        Data::Disk(file) => {
            // Kept on disk until open: then the descriptor keeps the bytes.
            let _pin = file.pin()?;
            CacheMetrics::add(&metrics.bytes_served_disk, count);
            let opened = async {
                let mut f = tokio::fs::File::open(file.path()).await?;
                f.seek(std::io::SeekFrom::Start(start)).await?;
                Ok::<_, std::io::Error>(f)
            };
            match opened.await {
                Ok(f) => Body::File {
                    file: f,
                    start,
                    len: count,
                },
                Err(e) => {
                    tracing::warn!(path = %file.path().display(), error = %e, "opening cache file");
                    return Some(Err(FileResponse::text(
                        500,
                        "cache file unreadable\n",
                        false,
                    )));
                }
            }
        }
    }))
}

/// If-Range against whichever validators the upstream gave (a missing one
/// never matches: an entity tag is never empty, and no `Last-Modified` was
/// ever the Unix epoch's).
fn if_range_ok(value: &str, etag: Option<&str>, modified: Option<SystemTime>) -> bool {
    if etag.is_none() && modified.is_none() {
        return false;
    }
    if_range_matches(
        value,
        etag.unwrap_or_default(),
        modified.unwrap_or(SystemTime::UNIX_EPOCH),
    )
}

/// Which tier answered, for hit metrics.
pub fn tier(object: &Object) -> Tier {
    match object.data {
        Data::Memory(_) => Tier::Memory,
        Data::Disk(_) => Tier::Disk,
    }
}
