//! `GET`/`HEAD` of `/vod/FILE`: files with Range, `ETag`, Last-Modified, If-Range,
//! If-None-Match and If-Modified-Since.

use std::time::SystemTime;

use tokio::io::AsyncSeekExt;

use super::VodError;
use super::path::{VodRoots, resolve};
use crate::http_file::{Body, FileRequest, FileResponse, Selected, content_type, select_range};
use crate::range::{etag, http_date, if_none_match, if_range_matches, not_modified_since};

/// URL prefix of VOD files.
pub const PREFIX: &str = "/vod/";

/// Answers a request for a path under [`PREFIX`].
pub async fn serve(roots: &VodRoots, req: &FileRequest<'_>) -> FileResponse {
    let head = req.is_head();
    if !(head || req.method.eq_ignore_ascii_case("GET")) {
        let mut r = FileResponse::text(405, "method not allowed\n", false);
        r.headers.push(("allow", "GET, HEAD".into()));
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
        ("content-type", content_type(rel).to_owned()),
        ("accept-ranges", "bytes".to_owned()),
        ("etag", tag.clone()),
        ("last-modified", http_date(modified)),
        ("cache-control", "public, max-age=300".to_owned()),
    ];
    // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    let not_modified = match (req.if_none_match, req.if_modified_since) {
        (Some(inm), _) => if_none_match(inm, &tag),
        (None, Some(ims)) => not_modified_since(ims, modified),
        (None, None) => false,
    };
    if not_modified {
        headers.retain(|(n, _)| *n != "content-type" && *n != "accept-ranges");
        return Ok(FileResponse {
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
        |ir| if_range_matches(ir, &tag, modified),
        &mut headers,
    ) {
        Ok(selected) => selected,
        Err(unsatisfiable) => return Ok(*unsatisfiable),
    };
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

/// The `/vod/{*path}` route.
pub fn routes(state: &crate::server::AppState) -> axum::Router {
    use axum::http::{HeaderMap, Method, Uri};
    use axum::response::IntoResponse;

    // An edge answers VOD from its pull-through cache.
    if let Some(cache) = &state.cache {
        return crate::cache::routes(cache.clone());
    }
    let roots = VodRoots::under(&state.config.data_dir);
    let egress = std::sync::Arc::clone(&state.egress);
    axum::Router::new()
        .route(
            "/vod/{*path}",
            axum::routing::get(
                |axum::extract::State((roots, egress)): axum::extract::State<(
                    VodRoots,
                    std::sync::Arc<crate::stats::EgressMeter>,
                )>,
                 method: Method,
                 uri: Uri,
                 headers: HeaderMap| async move {
                    let req = crate::http_file::axum_glue::request(&method, &uri, &headers, None);
                    let response = serve(&roots, &req).await;
                    // Counted for `/api/stats` egress (the autoscaler's input).
                    egress.add_vod(response.body_len());
                    response.into_response()
                },
            ),
        )
        .with_state((roots, egress))
}
