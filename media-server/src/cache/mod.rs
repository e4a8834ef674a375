//! The edge's pull-through cache for HTTP objects: VOD files and
//! recordings (`/vod/...`, whole or by range) and HLS playlists and
//! segments fetched from an `http://` upstream; VOD over RTMP on the edge
//! plays files from it, so the origin sends each file once.
//!
//! - Two tiers, both bounded by bytes: memory ([`memory`], small objects)
//!   and disk ([`disk`], every object but playlists, as whole files).
//!   Whole files rather than fixed-size blocks: RTMP VOD needs the whole
//!   file anyway, one object is one file to hand to the demuxer, and a
//!   range on a cold file costs one full fetch that later ranges reuse.
//! - The indexes are moka caches (size-weighted, LRU): moka is small and
//!   well kept, and gives byte-weighted eviction for both tiers. foyer
//!   (hybrid memory+disk) was the other candidate; it stores objects in its
//!   own block format on disk, so a cached VOD file could not be handed to
//!   the RTMP demuxer or served with a file body, and it brings far more
//!   dependencies.
//! - Freshness ([`policy`]): segments immutable, playlists a short TTL,
//!   files revalidated by `ETag` after `revalidate_secs`.
//! - N concurrent misses (or revalidations) of one object make one upstream
//!   fetch ([`coalesce`]); the fetch ([`fetch`]) streams the body to its
//!   cache file while it arrives.
//! - If the upstream cannot be reached, a stale copy is served (counted).
//! - An object too large for both tiers is not cached: each HTTP request
//!   for it is passed through to the upstream ([`pass`]).

pub mod coalesce;
pub mod disk;
pub mod fetch;
pub mod memory;
pub mod metrics;
pub mod pass;
pub mod policy;
pub mod pool;
pub mod respond;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use self::coalesce::Flights;
use self::disk::{DiskFile, DiskTier};
use self::fetch::{FetchError, Fetched, Fetcher, Sink};
use self::memory::MemoryTier;
use self::metrics::{CacheMetrics, Tier};
use self::policy::{Action, Class, Freshness};
use self::pool::{Pool, Route};
use self::respond::{Outcome, respond};
use crate::config::EdgeConfig;
use crate::edge::peers::PeerSet;
use crate::http_file::{FileRequest, FileResponse, content_type};
use crate::vod::VodError;
use crate::vod::path::{percent_decode, plain_components};

/// Largest playlist accepted (they are kept in memory only).
const MAX_PLAYLIST: u64 = 4 * 1024 * 1024;

/// Why an object cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The request path is malformed or tries to leave its root.
    #[error("bad path")]
    BadPath,
    /// The upstream could not give the object.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The disk tier's directory could not be prepared.
    #[error("cache directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    /// The fetch task failed (a bug).
    #[error("cache fetch task failed")]
    Internal,
}

/// What is known about a cached object.
#[derive(Debug)]
pub struct Meta {
    /// How it ages.
    pub class: Class,
    /// The upstream's `ETag`.
    pub etag: Option<String>,
    /// The upstream's `Last-Modified`.
    pub last_modified: Option<String>,
    /// `Content-Type` to answer with.
    pub content_type: String,
    /// The upstream's `Cache-Control`, passed on.
    pub cache_control: Option<String>,
    /// Body length.
    pub len: u64,
    /// When it was last fetched or revalidated (ms since the cache started);
    /// shared by the copies in both tiers.
    validated: AtomicU64,
}

/// Where an object's bytes are.
#[derive(Debug)]
pub enum Data {
    /// In memory.
    Memory(Bytes),
    /// In a cache file.
    Disk(Arc<DiskFile>),
}

/// A cached object: one tier's copy.
#[derive(Debug)]
pub struct Object {
    /// Headers and age, shared between tiers.
    pub meta: Arc<Meta>,
    /// The bytes.
    pub data: Data,
}

/// An object found for a request, its file (if any) pinned until every
/// request that got it has opened it: eviction cannot pull the file from
/// under a fresh miss.
#[derive(Clone)]
struct Found {
    object: Arc<Object>,
    outcome: Outcome,
    _pin: Option<Arc<disk::ReadPin>>,
}

impl Found {
    /// `None` when the object's file is gone already.
    fn pinned(object: Arc<Object>, outcome: Outcome) -> Option<Self> {
        let pin = match &object.data {
            Data::Disk(f) => Some(Arc::new(f.pin()?)),
            Data::Memory(_) => None,
        };
        Some(Self {
            object,
            outcome,
            _pin: pin,
        })
    }
}

type FlightResult = Result<Found, Arc<CacheError>>;

struct Inner {
    memory: MemoryTier,
    disk: DiskTier,
    fetcher: Fetcher,
    flights: Arc<Flights<FlightResult>>,
    metrics: CacheMetrics,
    freshness: Freshness,
    memory_bytes: u64,
    epoch: Instant,
    /// Set on clustered edges: misses of objects another edge owns are
    /// fetched from it.
    pool: Option<Pool>,
}

/// The edge cache (cheap to clone; one per process).
#[derive(Clone)]
pub struct EdgeCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EdgeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeCache")
            .field("dir", &self.inner.disk.dir())
            .field("upstreams", &self.inner.fetcher.upstreams())
            .finish_non_exhaustive()
    }
}

impl EdgeCache {
    /// A cache for `edge` (its `http://` upstreams, `cache` settings and,
    /// when clustered, its pool; `http_port` is this edge's HTTP port, the
    /// port of peers found through the peer Service). Empties
    /// `edge.cache.dir/objects`.
    pub fn new(edge: &EdgeConfig, http_port: u16) -> Result<Self, CacheError> {
        let peers = Arc::new(PeerSet::new(&edge.balancing, http_port));
        Self::with_peers(edge, peers)
    }

    /// [`new`](Self::new) over the edge's own peer set (shared with the
    /// live relay, so each peer is probed once for both).
    pub fn with_peers(edge: &EdgeConfig, peers: Arc<PeerSet>) -> Result<Self, CacheError> {
        let c = &edge.cache;
        let disk =
            DiskTier::new(&c.dir, c.disk_bytes).map_err(|e| CacheError::Dir(c.dir.clone(), e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                memory: MemoryTier::new(c.memory_bytes),
                disk,
                fetcher: Fetcher::new(&edge.upstreams),
                flights: Arc::new(Flights::default()),
                metrics: CacheMetrics::default(),
                freshness: Freshness {
                    playlist_ttl: Duration::from_millis(c.playlist_ttl_ms),
                    revalidate_after: Duration::from_secs(c.revalidate_secs),
                },
                memory_bytes: c.memory_bytes,
                epoch: Instant::now(),
                pool: Pool::of(edge, peers),
            }),
        })
    }

    /// The counters.
    pub fn metrics(&self) -> &CacheMetrics {
        &self.inner.metrics
    }

    /// Appends the cache's metric families to `/metrics` text.
    pub fn render_metrics(&self, out: &mut String) {
        let i = &self.inner;
        i.metrics.render(out, i.memory.bytes(), i.disk.bytes());
    }

    /// Answers a `GET`/`HEAD` for `req.path` from the cache, fetching it
    /// from the upstream (or the owner edge of a clustered pool) on a miss.
    pub async fn serve(&self, req: &FileRequest<'_>) -> FileResponse {
        self.serve_for(req, false).await
    }

    /// [`serve`](Self::serve); `from_peer` when another edge of the pool
    /// asks (it is fetched upstream, never forwarded).
    pub async fn serve_for(&self, req: &FileRequest<'_>, from_peer: bool) -> FileResponse {
        let head = req.is_head();
        if !(head || req.method.eq_ignore_ascii_case("GET")) {
            let mut r = FileResponse::text(405, "method not allowed\n", false);
            r.headers.push(("allow", "GET, HEAD".into()));
            return r;
        }
        let Some(key) = cache_key(req.path) else {
            return FileResponse::text(400, "bad path\n", head);
        };
        // Twice: a disk object may be evicted between lookup and open.
        for _ in 0..2 {
            match self.get(&key, from_peer).await {
                Ok(found) => {
                    let (object, outcome) = (&found.object, found.outcome);
                    if let Some(r) = respond(object, req, outcome, &self.inner.metrics).await {
                        return r;
                    }
                }
                Err(e) if matches!(&*e, CacheError::Fetch(FetchError::TooLarge(_))) => {
                    return match pass::pass_through(&self.inner, &key, req).await {
                        Ok(r) => r,
                        Err(e) => error_response(&key, &CacheError::Fetch(e), head),
                    };
                }
                Err(e) => return error_response(&key, &e, head),
            }
        }
        FileResponse::text(503, "cache busy, try again\n", head)
    }

    /// Opens a VOD file for RTMP play on the edge: the file named by the
    /// stream name (same candidates as the origin tries) is fetched once
    /// into the disk tier, then played by the origin's own demuxer.
    pub async fn open_rtmp(
        &self,
        stream_name: &str,
    ) -> Result<crate::vod::rtmp::VodPlayback, VodError> {
        let mut last = VodError::NotFound;
        for candidate in crate::vod::rtmp::candidates(stream_name) {
            let Ok(parts) = plain_components(&candidate) else {
                last = VodError::BadPath;
                continue;
            };
            let key = format!("/vod/{}", encode_parts(&parts));
            // Twice: a disk object may be evicted between lookup and open.
            for _ in 0..2 {
                match self.get(&key, false).await {
                    Ok(found) => {
                        if let Some(played) = self.play(&key, &found.object).await {
                            return played;
                        }
                    }
                    Err(e) => match &*e {
                        CacheError::Fetch(FetchError::Status(404)) => {
                            last = VodError::NotFound;
                            break;
                        }
                        // RTMP play needs the whole file on this edge.
                        CacheError::Fetch(FetchError::TooLarge(n)) => {
                            return Err(VodError::Io(std::io::Error::other(format!(
                                "{candidate}: file is larger than the edge's cache \
                                 ({n} bytes or more); play it from the origin or over HTTP"
                            ))));
                        }
                        other => {
                            return Err(VodError::Io(std::io::Error::other(other.to_string())));
                        }
                    },
                }
            }
        }
        Err(last)
    }

    /// Plays `object`'s bytes from a file; `None` when its file was evicted
    /// before it could be pinned (ask again).
    async fn play(
        &self,
        key: &str,
        object: &Arc<Object>,
    ) -> Option<Result<crate::vod::rtmp::VodPlayback, VodError>> {
        let on_disk = match &object.data {
            Data::Disk(_) => Some(Arc::clone(object)),
            Data::Memory(_) => self.inner.disk.get(key),
        };
        if let Some(o) = &on_disk
            && let Data::Disk(f) = &o.data
        {
            // Pinned until the demuxer has the file open.
            let _pin = f.pin()?;
            return Some(crate::vod::rtmp::open_file(f.path().to_owned()).await);
        }
        let Data::Memory(bytes) = &object.data else {
            return None;
        };
        // Evicted from disk but still in memory: a private copy for this
        // playback, deleted once the demuxer has it open.
        let file = self.inner.disk.new_file();
        if let Err(e) = tokio::fs::write(file.path(), bytes).await {
            return Some(Err(e.into()));
        }
        Some(crate::vod::rtmp::open_file(file.path().to_owned()).await)
    }

    /// The object under `key`: fresh from a tier, or fetched/revalidated
    /// (one upstream request however many callers ask at once).
    async fn get(&self, key: &str, from_peer: bool) -> FlightResult {
        let inner = &self.inner;
        // Pinned at once: a file evicted before that counts as a miss.
        let found = inner.find(key).and_then(|o| Found::pinned(o, Outcome::Hit));
        if let Some(hit) = &found
            && inner.is_fresh(&hit.object)
        {
            let tier = respond::tier(&hit.object);
            CacheMetrics::add(
                match tier {
                    Tier::Memory => &inner.metrics.hits_memory,
                    Tier::Disk => &inner.metrics.hits_disk,
                },
                1,
            );
            return Ok(hit.clone());
        }
        if found.is_none() {
            CacheMetrics::add(&inner.metrics.misses, 1);
        }
        let route = match &inner.pool {
            Some(pool) if !from_peer => pool.route(key).await,
            _ => Route::Upstream,
        };
        // Fetches from the owner and from the upstream coalesce apart: an
        // owner's upstream fetch must not wait on a peer fetch that waits
        // on it.
        let flight_key = match &route {
            Route::Upstream => key.to_owned(),
            Route::Peer(_) => format!("peer {key}"),
        };
        let recheck = || {
            inner
                .find(key)
                .filter(|o| inner.is_fresh(o))
                .and_then(|o| Found::pinned(o, Outcome::Hit))
                .map(Ok)
        };
        let make = || {
            let inner = Arc::clone(&self.inner);
            let key = key.to_owned();
            async move { inner.fill(&key, found, route).await }
        };
        inner
            .flights
            .run(&flight_key, recheck, make)
            .await
            .unwrap_or_else(|| Err(Arc::new(CacheError::Internal)))
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn find(&self, key: &str) -> Option<Arc<Object>> {
        self.memory.get(key).or_else(|| self.disk.get(key))
    }

    fn is_fresh(&self, object: &Object) -> bool {
        let m = &object.meta;
        let age = self
            .now_ms()
            .saturating_sub(m.validated.load(Ordering::Relaxed));
        policy::action(
            m.class,
            Duration::from_millis(age),
            m.etag.is_some(),
            self.freshness,
        ) == Action::Serve
    }

    /// Fetches `key` (or revalidates `stale`) and stores the result.
    async fn fill(&self, key: &str, stale: Option<Found>, route: Route) -> FlightResult {
        let class = Class::of(key);
        let revalidate = stale.as_ref().map(|f| &f.object).filter(|o| {
            o.meta.etag.is_some()
                && policy::action(class, Duration::MAX, true, self.freshness) == Action::Revalidate
        });
        let if_none_match = revalidate.and_then(|o| o.meta.etag.clone());
        if if_none_match.is_some() {
            CacheMetrics::add(&self.metrics.revalidations, 1);
        }
        let file = policy::on_disk(class, self.disk.bound()).then(|| self.disk.new_file());
        let memory_max = if class == Class::Playlist {
            MAX_PLAYLIST
        } else {
            (self.memory_bytes / 8).min(8 * 1024 * 1024)
        };
        let sink = Sink {
            file: file.as_deref().map(DiskFile::path),
            disk_max: self.disk.bound(),
            memory_max,
        };
        let m = &self.metrics;
        let counted = |requests: u64, bytes: u64| {
            CacheMetrics::add(&m.upstream_requests, requests);
            CacheMetrics::add(&m.upstream_bytes, bytes);
        };
        let inm = if_none_match.as_deref();
        let fetched = match &route {
            Route::Upstream => self.fetcher.fetch(key, inm, &sink, &counted).await,
            Route::Peer(owner) => {
                CacheMetrics::add(&m.peer_requests, 1);
                match self
                    .fetcher
                    .fetch_peer(owner, key, inm, &sink, &counted)
                    .await
                {
                    // The owner is gone or failing: ask the upstream.
                    Err(e @ (FetchError::Unreachable(_) | FetchError::Status(500..=599))) => {
                        tracing::debug!(%owner, error = %e, "owner edge unavailable, fetching upstream");
                        self.fetcher.fetch(key, inm, &sink, &counted).await
                    }
                    other => other,
                }
            }
        };
        match fetched {
            Ok(Fetched::NotModified(_)) => match stale {
                Some(stale) => {
                    CacheMetrics::add(&m.not_modified, 1);
                    let meta = &stale.object.meta;
                    meta.validated.store(self.now_ms(), Ordering::Relaxed);
                    Ok(Found {
                        outcome: Outcome::Revalidated,
                        ..stale
                    })
                }
                // We sent no validator: a confused upstream.
                None => Err(Arc::new(CacheError::Fetch(FetchError::Status(304)))),
            },
            Ok(Fetched::Body {
                validators,
                len,
                memory,
                on_disk,
            }) => {
                // Larger than the disk tier: answered from memory, never
                // from (or kept in) a file.
                let file = file.filter(|_| on_disk);
                // A non-owner keeps its copy in memory only: the owner's
                // disk holds the object for the pool.
                let file_indexed = route == Route::Upstream;
                self.store(key, class, (validators, len, memory), file, file_indexed)
            }
            // Not an upstream failure: requests pass through; an older
            // smaller copy must not be served in its place.
            Err(e @ FetchError::TooLarge(_)) => {
                self.memory.remove(key);
                self.disk.remove(key);
                Err(Arc::new(e.into()))
            }
            Err(e) => {
                CacheMetrics::add(&m.upstream_errors, 1);
                match (stale, e) {
                    (_, e @ FetchError::Status(404)) => {
                        self.memory.remove(key);
                        self.disk.remove(key);
                        Err(Arc::new(e.into()))
                    }
                    (Some(stale), e) => {
                        tracing::warn!(path = key, error = %e, "upstream unavailable: serving a stale copy");
                        CacheMetrics::add(&m.stale_served, 1);
                        Ok(Found {
                            outcome: Outcome::Stale,
                            ..stale
                        })
                    }
                    (None, e) => Err(Arc::new(e.into())),
                }
            }
        }
    }
}

fn error_response(key: &str, e: &CacheError, head: bool) -> FileResponse {
    tracing::debug!(path = %key, error = %e, "edge cache could not serve");
    match e {
        CacheError::Fetch(FetchError::Status(404)) => FileResponse::text(404, "not found\n", head),
        CacheError::Fetch(FetchError::Status(s @ 400..=499)) => {
            FileResponse::text(*s, "refused by upstream\n", head)
        }
        CacheError::BadPath => FileResponse::text(400, "bad path\n", head),
        _ => FileResponse::text(502, "upstream unavailable\n", head),
    }
}

impl Inner {
    /// Indexes a fetched object in the tiers policy allows, and returns the
    /// copy to answer from.
    fn store(
        &self,
        key: &str,
        class: Class,
        (validators, len, memory): (fetch::Validators, u64, Option<Bytes>),
        file: Option<Arc<DiskFile>>,
        file_indexed: bool,
    ) -> FlightResult {
        let storable = policy::storable(validators.cache_control.as_deref());
        let meta = Arc::new(Meta {
            class,
            etag: validators.etag,
            last_modified: validators.last_modified,
            content_type: validators
                .content_type
                .unwrap_or_else(|| content_type(key).to_owned()),
            cache_control: validators.cache_control,
            len,
            validated: AtomicU64::new(self.now_ms()),
        });
        let on_disk = file.map(|f| {
            Arc::new(Object {
                meta: Arc::clone(&meta),
                data: Data::Disk(f),
            })
        });
        let memory = memory.map(|b| {
            Arc::new(Object {
                meta: Arc::clone(&meta),
                data: Data::Memory(b),
            })
        });
        let in_memory = memory
            .clone()
            .filter(|_| policy::in_memory(class, len, self.memory_bytes));
        // Pinned before it is indexed: indexing may evict it at once (an
        // object larger than the tier), and the waiting requests still get it.
        // An object on neither tier (too large for the disk tier, not kept
        // in memory) is still answered from its memory copy.
        let answer = in_memory
            .clone()
            .or_else(|| on_disk.clone())
            .or(memory)
            .and_then(|o| Found::pinned(o, Outcome::Miss))
            .ok_or_else(|| Arc::new(CacheError::Internal));
        if storable {
            match &on_disk {
                Some(o) if file_indexed => self.disk.insert(key, Arc::clone(o)),
                _ => self.disk.remove(key),
            }
            match &in_memory {
                Some(o) => self.memory.insert(key, Arc::clone(o)),
                // A smaller older version must not shadow the new one.
                None => self.memory.remove(key),
            }
        } else {
            self.memory.remove(key);
            self.disk.remove(key);
        }
        answer
    }
}

/// The cache key of a raw request path: its decoded plain names
/// re-encoded one way, so `/vod/a%2Db.mp4` and `/vod/a-b.mp4` are one
/// object. `None` for paths with `..`, hidden names and the like (the
/// origin refuses those too).
pub fn cache_key(raw_path: &str) -> Option<String> {
    let rest = raw_path.strip_prefix('/')?;
    let decoded = percent_decode(rest)?;
    let parts = plain_components(&decoded).ok()?;
    Some(format!("/{}", encode_parts(&parts)))
}

/// Percent-encodes path names: everything but unreserved characters.
fn encode_parts(parts: &[&str]) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        for b in p.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                use std::fmt::Write as _;
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The edge's `/vod/{*path}` route: every VOD request through the cache.
pub fn routes(cache: EdgeCache) -> axum::Router {
    use axum::http::{HeaderMap, Method, Uri};
    use axum::response::IntoResponse;

    axum::Router::new()
        .route(
            "/vod/{*path}",
            axum::routing::get(
                |axum::extract::State(cache): axum::extract::State<EdgeCache>,
                 method: Method,
                 uri: Uri,
                 headers: HeaderMap| async move {
                    let req = crate::http_file::axum_glue::request(&method, &uri, &headers, None);
                    let from_peer = headers.contains_key(fetch::PEER_HEADER);
                    cache.serve_for(&req, from_peer).await.into_response()
                },
            ),
        )
        .with_state(cache)
}

#[cfg(test)]
pub(crate) fn test_object_len(data: Data, len: u64) -> Arc<Object> {
    Arc::new(Object {
        meta: Arc::new(Meta {
            class: Class::File,
            etag: None,
            last_modified: None,
            content_type: "application/octet-stream".into(),
            cache_control: None,
            len,
            validated: AtomicU64::new(0),
        }),
        data,
    })
}

#[cfg(test)]
pub(crate) fn test_object(data: Data) -> Arc<Object> {
    let len = match &data {
        Data::Memory(b) => b.len() as u64,
        Data::Disk(_) => 0,
    };
    test_object_len(data, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_canonical_and_safe() {
        assert_eq!(cache_key("/vod/a%2Db.mp4").as_deref(), Some("/vod/a-b.mp4"));
        assert_eq!(cache_key("/vod/a b.mp4").as_deref(), Some("/vod/a%20b.mp4"));
        assert_eq!(
            cache_key("/vod/a%20b.mp4").as_deref(),
            Some("/vod/a%20b.mp4")
        );
        assert_eq!(
            cache_key("/vod/recordings/live/x.flv").as_deref(),
            Some("/vod/recordings/live/x.flv")
        );
        for bad in [
            "vod/x",
            "/vod/../x",
            "/vod/%2e%2e/x",
            "/vod//x",
            "/vod/.h",
            "/vod/x%zz",
        ] {
            assert_eq!(cache_key(bad), None, "{bad}");
        }
    }
}
