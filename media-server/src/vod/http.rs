//! `GET`/`HEAD` of `/vod/FILE`: files with Range, `ETag`, Last-Modified, If-Range,
//! If-None-Match and If-Modified-Since.

use std::time::SystemTime;

use tokio::io::AsyncSeekExt;

use super::VodError;
use super::path::{VodRoots, resolve};
use crate::http_file::{Body, FileRequest, FileResponse, content_type};
use crate::range::{
    RangeRequest, etag, http_date, if_none_match, if_range_matches, not_modified_since, parse_range,
};

/// URL prefix of VOD files.
pub const PREFIX: &str = "/vod/";

/// Answers a request for a path under [`PREFIX`].
pub async fn serve(roots: &VodRoots, req: &FileRequest<'_>) -> FileResponse {
    let head = req.is_head();
    if !(head || req.method.eq_ignore_ascii_case("GET")) {
        let mut r = FileResponse::text(405, "method not allowed\n", false);
        r.headers.push(("Allow", "GET, HEAD".into()));
        return r;
    }
    let Some(rel) = req.path.strip_prefix(PREFIX) else {
        return FileResponse::text(404, "not found\n", head);
    };
    match open(roots, rel, req).await {
        Ok(r) => r,
        Err(VodError::BadPath) => FileResponse::text(400, "bad path\n", head),
        Err(e) => {
            tracing::debug!(path = req.path, error = %e, "VOD request failed");
            FileResponse::text(404, "not found\n", head)
        }
    }
}

async fn open(
    roots: &VodRoots,
    rel: &str,
    req: &FileRequest<'_>,
) -> Result<FileResponse, VodError> {
    let path = resolve(roots, rel).await?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| VodError::NotFound)?;
    let meta = file.metadata().await.map_err(|_| VodError::NotFound)?;
    let len = meta.len();
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let tag = etag(len, modified);
    let mut headers = vec![
        ("Content-Type", content_type(rel).to_owned()),
        ("Accept-Ranges", "bytes".to_owned()),
        ("ETag", tag.clone()),
        ("Last-Modified", http_date(modified)),
        ("Cache-Control", "public, max-age=300".to_owned()),
    ];
    // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    let not_modified = match (req.if_none_match, req.if_modified_since) {
        (Some(inm), _) => if_none_match(inm, &tag),
        (None, Some(ims)) => not_modified_since(ims, modified),
        (None, None) => false,
    };
    if not_modified {
        headers.retain(|(n, _)| *n != "Content-Type" && *n != "Accept-Ranges");
        return Ok(FileResponse {
            status: 304,
            headers,
            body: Body::Empty,
        });
    }
    let range = match req.range {
        Some(r)
            if req
                .if_range
                .is_none_or(|ir| if_range_matches(ir, &tag, modified)) =>
        {
            parse_range(r, len)
        }
        _ => RangeRequest::Full,
    };
    let (status, start, count) = match range {
        RangeRequest::Full => (200, 0, len),
        RangeRequest::Partial { start, end } => (206, start, end - start + 1),
        RangeRequest::Unsatisfiable => {
            headers.retain(|(n, _)| *n != "Content-Type");
            headers.push(("Content-Range", format!("bytes */{len}")));
            headers.push(("Content-Length", "0".into()));
            return Ok(FileResponse {
                status: 416,
                headers,
                body: Body::Empty,
            });
        }
    };
    if let Some(cr) = range.content_range(len) {
        headers.push(("Content-Range", cr));
    }
    headers.push(("Content-Length", count.to_string()));
    let body = if req.is_head() || count == 0 {
        Body::Empty
    } else {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|_| VodError::NotFound)?;
        Body::File {
            file,
            start,
            len: count,
        }
    };
    Ok(FileResponse {
        status,
        headers,
        body,
    })
}
