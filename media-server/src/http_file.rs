//! The small request/response shapes HLS and VOD file serving speak, so
//! they stay independent of the HTTP server that carries them: the router
//! fills a [`FileRequest`] from the request line and headers and writes the
//! [`FileResponse`] back.

use std::net::IpAddr;

use bytes::Bytes;

use crate::range::{RangeRequest, parse_range};

/// What file serving needs from a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileRequest<'a> {
    /// `GET` or `HEAD` (others get 405).
    pub method: &'a str,
    /// The raw (still percent-encoded) path, without the query.
    pub path: &'a str,
    /// `Range` header.
    pub range: Option<&'a str>,
    /// `If-Range` header.
    pub if_range: Option<&'a str>,
    /// `If-None-Match` header.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since` header.
    pub if_modified_since: Option<&'a str>,
    /// `User-Agent` header (HLS sessions are told apart by it and the address).
    pub user_agent: Option<&'a str>,
    /// The client's address.
    pub client: Option<IpAddr>,
}

impl FileRequest<'_> {
    /// True for `HEAD`: send the headers of the `GET` answer without a body.
    pub fn is_head(&self) -> bool {
        self.method.eq_ignore_ascii_case("HEAD")
    }
}

/// The answer's body.
#[derive(Debug)]
pub enum Body {
    /// No body (HEAD, 304, 416 ...).
    Empty,
    /// In-memory bytes (playlists, live segments, error text).
    Bytes(Bytes),
    /// `len` bytes of an open file from offset `start`.
    File {
        /// The open file.
        file: tokio::fs::File,
        /// First byte to send.
        start: u64,
        /// Number of bytes to send.
        len: u64,
    },
    /// A body streamed from elsewhere as it arrives (an upstream's answer
    /// the edge cache passes through).
    Stream {
        /// The body.
        body: http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>,
        /// Its declared length (0 when unknown).
        len: u64,
    },
}

/// A status, headers and a body. `Content-Length` is always among the
/// headers (for HEAD, the length a GET would send).
#[derive(Debug)]
pub struct FileResponse {
    /// HTTP status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body,
}

/// What [`select_range`] chose to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    /// 200 or 206.
    pub status: u16,
    /// First byte offset.
    pub start: u64,
    /// Number of bytes.
    pub count: u64,
}

/// The part of a representation of `len` bytes a GET or HEAD gets: the
/// `Range` header honoured when there is no `If-Range` or `if_range_ok`
/// accepts it. Pushes `Content-Range` and `Content-Length` onto `headers` and
/// returns what to send, or the whole 416 answer. One
/// copy for the origin's VOD files and the edge cache.
///
/// # Errors
/// The 416 response when the range cannot be satisfied.
pub fn select_range(
    req: &FileRequest<'_>,
    len: u64,
    if_range_ok: impl FnOnce(&str) -> bool,
    headers: &mut Vec<(&'static str, String)>,
) -> Result<Selected, Box<FileResponse>> {
    let range = match req.range {
        Some(r) if req.if_range.is_none_or(if_range_ok) => parse_range(r, len),
        _ => RangeRequest::Full,
    };
    let (status, start, count) = match range {
        RangeRequest::Full => (200, 0, len),
        RangeRequest::Partial { start, end } => (206, start, end - start + 1),
        RangeRequest::Unsatisfiable => {
            headers.retain(|(n, _)| *n != "content-type");
            headers.push(("content-range", format!("bytes */{len}")));
            headers.push(("content-length", "0".into()));
            return Err(Box::new(FileResponse {
                status: 416,
                headers: std::mem::take(headers),
                body: Body::Empty,
            }));
        }
    };
    if let Some(cr) = range.content_range(len) {
        headers.push(("content-range", cr));
    }
    headers.push(("content-length", count.to_string()));
    Ok(Selected {
        status,
        start,
        count,
    })
}

impl FileResponse {
    /// A short plain-text answer (errors).
    pub fn text(status: u16, text: &str, head: bool) -> Self {
        Self {
            status,
            headers: vec![
                ("content-type", "text/plain; charset=utf-8".into()),
                ("content-length", text.len().to_string()),
            ],
            body: if head {
                Body::Empty
            } else {
                Body::Bytes(Bytes::copy_from_slice(text.as_bytes()))
            },
        }
    }

    /// Bytes of body this response sends (0 for HEAD and empty bodies).
    pub fn body_len(&self) -> u64 {
        match &self.body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } | Body::Stream { len, .. } => *len,
        }
    }

    /// The value of a header, for tests and logs.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `Content-Type` for a file name by its extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("mp4" | "m4v" | "f4v") => "video/mp4",
        Some("m4a") => "audio/mp4",
        Some("flv") => "video/x-flv",
        Some("ts") => "video/mp2t",
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("aac") => "audio/aac",
        Some("mp3") => "audio/mpeg",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The router side: a [`FileRequest`] from axum's request parts and a
/// [`FileResponse`] as an axum response (files streamed in 64 KiB reads).
pub mod axum_glue {
    use std::net::IpAddr;

    use axum::body::Body as AxumBody;
    use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use tokio::io::AsyncReadExt;
    use tokio_util::io::ReaderStream;

    use super::{Body, FileRequest, FileResponse};

    /// Borrows what file serving needs out of the request.
    pub fn request<'a>(
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
        client: Option<IpAddr>,
    ) -> FileRequest<'a> {
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        FileRequest {
            method: method.as_str(),
            path: uri.path(),
            range: h("range"),
            if_range: h("if-range"),
            if_none_match: h("if-none-match"),
            if_modified_since: h("if-modified-since"),
            user_agent: h("user-agent"),
            client,
        }
    }

    impl IntoResponse for FileResponse {
        fn into_response(self) -> Response {
            let body = match self.body {
                Body::Empty => AxumBody::empty(),
                Body::Bytes(b) => AxumBody::from(b),
                Body::File { file, len, .. } => {
                    AxumBody::from_stream(ReaderStream::with_capacity(file.take(len), 64 * 1024))
                }
                Body::Stream { body, .. } => AxumBody::new(body),
            };
            let mut response = Response::new(body);
            *response.status_mut() =
                StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            for (name, value) in self.headers {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    response
                        .headers_mut()
                        .insert(HeaderName::from_static(name), v);
                }
            }
            response
        }
    }
}
