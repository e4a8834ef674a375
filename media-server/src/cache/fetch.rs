//! The upstream HTTP client: `GET` an object from the first `http://`
//! upstream that answers, streaming its body to a cache file (and to memory
//! when small).
//!
//! hyper-util's pooled client over hyper 1 rather than reqwest: hyper is
//! already the server's HTTP stack and hyper-util is in the lock through
//! kube, so it adds no crates; upstreams are plain `http://` inside the
//! cluster, so no TLS stack is needed.
//!
//! A host that resolves to several addresses (a headless Service) is several
//! upstreams, tried in order. The next one is tried when an address refuses
//! the connection, answers 5xx, or answers 404 (recordings may live on only
//! one origin's volume).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper::header::{self, HeaderMap};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;

/// Marks a request one edge of a pool sends another for an object it owns.
pub const PEER_HEADER: &str = "x-fleetcast-peer";

/// How long connecting to one upstream address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the upstream may take to send its response head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the upstream may pause within a body.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an object could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No `http://` upstream is configured.
    #[error("no http:// upstream configured")]
    NoUpstream,
    /// Every upstream address refused or timed out.
    #[error("no upstream reachable: {0}")]
    Unreachable(String),
    /// The upstream answered with this status.
    #[error("upstream answered {0}")]
    Status(u16),
    /// The transfer broke off.
    #[error("upstream transfer failed: {0}")]
    Transfer(String),
    /// The object is larger than the disk tier and than memory allows: it is
    /// not cached (nor written to disk); HTTP requests for it are passed
    /// through.
    #[error("object larger than the edge's cache ({0} bytes or more)")]
    TooLarge(u64),
    /// Writing the cache file failed.
    #[error("writing cache file: {0}")]
    Io(#[from] std::io::Error),
}

/// What the upstream said about an object.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    /// `ETag`.
    pub etag: Option<String>,
    /// `Last-Modified`.
    pub last_modified: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
}

impl Validators {
    fn from_headers(h: &HeaderMap) -> Self {
        let get = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Self {
            etag: get(header::ETAG),
            last_modified: get(header::LAST_MODIFIED),
            content_type: get(header::CONTENT_TYPE),
            cache_control: get(header::CACHE_CONTROL),
        }
    }
}

/// Where a fetched body goes.
pub struct Sink<'a> {
    /// Write it to this file (None: memory only).
    pub file: Option<&'a Path>,
    /// The disk tier's bound: a body longer than this is not written to
    /// the file (or the partial file is removed as soon as it exceeds it).
    pub disk_max: u64,
    /// Also keep it in memory while it is at most this long.
    pub memory_max: u64,
}

/// An upstream's answer.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the cached copy is still good.
    NotModified(Validators),
    /// 200: the body was written to the sink.
    Body {
        /// The object's headers.
        validators: Validators,
        /// Body length.
        len: u64,
        /// The body, when it fit `memory_max`.
        memory: Option<Bytes>,
        /// The body is in the sink's file (false: it exceeded `disk_max`,
        /// or there was no file).
        on_disk: bool,
    },
}

/// An upstream's answer handed on as it is (see `super::pass`).
pub struct PassThrough {
    /// 200, 206, 304 or 416.
    pub status: u16,
    /// The entity headers worth passing on.
    pub headers: Vec<(&'static str, String)>,
    /// The body, not read yet.
    pub body: hyper::body::Incoming,
}

/// Response headers a pass-through keeps.
const PASSED: [&str; 7] = [
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "last-modified",
    "cache-control",
];

/// The HTTP client and the upstream list.
#[derive(Clone)]
pub struct Fetcher {
    client: Client<HttpConnector, Empty<Bytes>>,
    /// `HOST:PORT` of each `http://` upstream, in configured order.
    upstreams: Vec<String>,
}

impl Fetcher {
    /// A client for the `http://` entries of `upstreams` (others ignored).
    pub fn new(upstreams: &[String]) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let upstreams = upstreams
            .iter()
            .filter_map(|u| u.strip_prefix("http://"))
            .map(|h| {
                let h = h.trim_end_matches('/');
                if h.contains(':') {
                    h.to_owned()
                } else {
                    format!("{h}:80")
                }
            })
            .collect();
        Self { client, upstreams }
    }

    /// The configured `HOST:PORT`s.
    pub fn upstreams(&self) -> &[String] {
        &self.upstreams
    }

    /// Every address of every upstream, in order (resolved now: a headless
    /// Service's members change).
    async fn addresses(&self) -> Vec<(String, SocketAddr)> {
        let mut out = Vec::new();
        for host in &self.upstreams {
            match tokio::net::lookup_host(host.as_str()).await {
                Ok(addrs) => out.extend(addrs.map(|a| (host.clone(), a))),
                Err(e) => tracing::warn!(upstream = %host, error = %e, "resolving upstream"),
            }
        }
        out
    }

    /// `GET path` from the first upstream that has it, conditional on
    /// `if_none_match`; the body goes to `sink`. `counted` is told each
    /// request sent and each body byte received, for metrics.
    pub async fn fetch(
        &self,
        path: &str,
        if_none_match: Option<&str>,
        sink: &Sink<'_>,
        counted: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Fetched, FetchError> {
        if self.upstreams.is_empty() {
            return Err(FetchError::NoUpstream);
        }
        let addrs = self.addresses().await;
        self.fetch_from(&addrs, false, path, if_none_match, sink, counted)
            .await
    }

    /// `GET path` from the pool peer at `peer` (`HOST:PORT`), marked as a
    /// peer request so the peer fetches from the upstreams itself rather
    /// than forwarding again (pools whose members disagree on the owner
    /// for a moment must not loop).
    pub async fn fetch_peer(
        &self,
        peer: &str,
        path: &str,
        if_none_match: Option<&str>,
        sink: &Sink<'_>,
        counted: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Fetched, FetchError> {
        let addrs: Vec<(String, SocketAddr)> = match tokio::net::lookup_host(peer).await {
            Ok(a) => a.map(|a| (peer.to_owned(), a)).collect(),
            Err(e) => return Err(FetchError::Unreachable(format!("{peer}: {e}"))),
        };
        self.fetch_from(&addrs, true, path, if_none_match, sink, counted)
            .await
    }

    /// `GET` (or `HEAD`) `path` from the first upstream that has it, with
    /// `forward` (Range, conditionals) as request headers; the answer is
    /// returned unread, for one client.
    pub async fn pass_through(
        &self,
        head: bool,
        path: &str,
        forward: &[(&'static str, &str)],
        counted: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<PassThrough, FetchError> {
        if self.upstreams.is_empty() {
            return Err(FetchError::NoUpstream);
        }
        let mut last = FetchError::Unreachable("no address resolved".into());
        for (host, addr) in self.addresses().await {
            let mut req = hyper::Request::builder()
                .method(if head {
                    hyper::Method::HEAD
                } else {
                    hyper::Method::GET
                })
                .uri(format!(
                    "http://{addr}{}",
                    crate::auth::upstream::sign_path(path)
                ))
                .header(header::HOST, host.as_str())
                .header(header::USER_AGENT, "fleetcast-edge");
            for (name, value) in forward {
                req = req.header(*name, *value);
            }
            let req = req
                .body(Empty::new())
                .map_err(|e| FetchError::Transfer(e.to_string()))?;
            counted(1, 0);
            let response = match tokio::time::timeout(HEAD_TIMEOUT, self.client.request(req)).await
            {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    last = FetchError::Unreachable(format!("{addr}: {e}"));
                    continue;
                }
                Err(_) => {
                    last =
                        FetchError::Unreachable(format!("{addr}: no answer in {HEAD_TIMEOUT:?}"));
                    continue;
                }
            };
            let status = response.status().as_u16();
            match status {
                200 | 206 | 304 | 416 => {
                    let h = response.headers();
                    let headers = PASSED
                        .iter()
                        .filter_map(|n| {
                            let v = h.get(*n)?.to_str().ok()?;
                            Some((*n, v.to_owned()))
                        })
                        .collect();
                    return Ok(PassThrough {
                        status,
                        headers,
                        body: response.into_body(),
                    });
                }
                404 | 500..=599 => last = FetchError::Status(status),
                _ => return Err(FetchError::Status(status)),
            }
        }
        Err(last)
    }

    async fn fetch_from(
        &self,
        addrs: &[(String, SocketAddr)],
        from_peer: bool,
        path: &str,
        if_none_match: Option<&str>,
        sink: &Sink<'_>,
        counted: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Fetched, FetchError> {
        let mut last = FetchError::Unreachable("no address resolved".into());
        for (host, addr) in addrs {
            // Signed by this edge when play signing is on (`auth::upstream`).
            let signed = crate::auth::upstream::sign_path(path);
            let mut req = hyper::Request::get(format!("http://{addr}{signed}"))
                .header(header::HOST, host.as_str())
                .header(header::USER_AGENT, "fleetcast-edge");
            if from_peer {
                req = req.header(PEER_HEADER, "1");
            }
            if let Some(tag) = if_none_match {
                req = req.header(header::IF_NONE_MATCH, tag);
            }
            let req = req
                .body(Empty::new())
                .map_err(|e| FetchError::Transfer(e.to_string()))?;
            counted(1, 0);
            let response = match tokio::time::timeout(HEAD_TIMEOUT, self.client.request(req)).await
            {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "upstream request failed");
                    last = FetchError::Unreachable(format!("{addr}: {e}"));
                    continue;
                }
                Err(_) => {
                    last =
                        FetchError::Unreachable(format!("{addr}: no answer in {HEAD_TIMEOUT:?}"));
                    continue;
                }
            };
            let status = response.status().as_u16();
            let validators = Validators::from_headers(response.headers());
            match status {
                200 => {
                    let declared = response
                        .headers()
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    let body = response.into_body();
                    let (len, memory, on_disk) = read_body(body, declared, sink, counted).await?;
                    return Ok(Fetched::Body {
                        validators,
                        len,
                        memory,
                        on_disk,
                    });
                }
                304 => return Ok(Fetched::NotModified(validators)),
                404 | 500..=599 => last = FetchError::Status(status),
                _ => return Err(FetchError::Status(status)),
            }
        }
        Err(last)
    }
}

/// Whether a body of `len` bytes (so far or declared) may stay on disk.
fn fits_disk(len: u64, disk_max: u64) -> bool {
    len <= disk_max
}

/// Reads a 200's body into the sink: (length, memory copy, kept on disk).
/// A body larger than the disk tier never stays on disk, so the cache
/// directory exceeds its bound only by downloads that fit it.
async fn read_body(
    mut body: hyper::body::Incoming,
    declared: Option<u64>,
    sink: &Sink<'_>,
    counted: &(dyn Fn(u64, u64) + Sync),
) -> Result<(u64, Option<Bytes>, bool), FetchError> {
    let path = sink
        .file
        .filter(|_| declared.is_none_or(|d| fits_disk(d, sink.disk_max)));
    // Declared too large for both: nothing to keep, the body is not read
    // (the requests are answered by a pass-through instead).
    if let Some(d) = declared
        && path.is_none()
        && d > sink.memory_max
    {
        return Err(FetchError::TooLarge(d));
    }
    let mut file = match path {
        Some(p) => Some(tokio::io::BufWriter::with_capacity(
            256 * 1024,
            tokio::fs::File::create(p).await?,
        )),
        None => None,
    };
    let mut memory = Some(BytesMut::new());
    let mut len = 0u64;
    loop {
        let frame = match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return Err(FetchError::Transfer("upstream stalled".into())),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(FetchError::Transfer(e.to_string())),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len += data.len() as u64;
        counted(0, data.len() as u64);
        if file.is_some() && !fits_disk(len, sink.disk_max) {
            file = None;
            if let Some(p) = path {
                tokio::fs::remove_file(p).await?;
            }
        }
        if let Some(f) = &mut file {
            f.write_all(&data).await?;
        }
        if let Some(m) = &mut memory {
            if len <= sink.memory_max {
                m.extend_from_slice(&data);
            } else {
                memory = None;
            }
        }
        if file.is_none() && memory.is_none() {
            return Err(FetchError::TooLarge(len));
        }
    }
    if let Some(f) = &mut file {
        f.flush().await?;
    }
    Ok((len, memory.map(BytesMut::freeze), file.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodies_within_the_disk_bound_stay_on_disk() {
        assert!(fits_disk(0, 0));
        assert!(fits_disk(1024, 1024));
        assert!(!fits_disk(1025, 1024));
    }

    #[test]
    fn only_http_upstreams_with_default_port() {
        let f = Fetcher::new(&[
            "rtmp://o:1935".into(),
            "http://o.ns.svc:8080".into(),
            "http://plain".into(),
        ]);
        assert_eq!(f.upstreams(), ["o.ns.svc:8080", "plain:80"]);
    }
}
