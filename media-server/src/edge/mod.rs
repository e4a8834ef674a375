//! The edge role: live streams pulled on demand from upstreams (origins,
//! other edges, any RTMP server) into the local hub, shared by every local
//! viewer, closed when idle, and found again on another origin when the
//! one holding a stream goes away; and the pool's balancing (rendezvous
//! ownership of streams among peer edges).
//!
//! A relayed stream is an ordinary publication in the local hub, so every
//! protocol (RTMP, HTTP-FLV, HLS cut locally) serves it as on an origin.
//! The viewer paths call [`Edge::ensure_live`] when a stream is not live.

pub mod http;
pub mod locate;
pub mod misses;
pub mod peers;
pub mod rebase;
mod relay;
pub mod rendezvous;
pub mod upstream;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::config::{BalancingMode, Config};
use crate::hub::{Hub, StreamKey};
use locate::{Pull, PullTimeouts};
use misses::{MAX_MISSES, MISS_TTL, RecentMisses};
use peers::PeerSet;
use rendezvous::Peer;
use upstream::{Scheme, UpstreamUrl};

/// How long a viewer waits for the edge to find its stream.
pub const VIEWER_WAIT: Duration = Duration::from_secs(20);
/// Relays looking for their stream at once (each asks every upstream); a
/// request for one more stream while they are all busy is refused.
pub const MAX_LOCATING: usize = 64;
/// Pause between failover lookups.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Timeouts of one pull attempt. `connect` is long because an upstream
/// edge answers `Play.Start` only once it has found the stream itself.
pub const PULL_TIMEOUTS: PullTimeouts = PullTimeouts {
    connect: Duration::from_secs(15),
    media: Duration::from_secs(6),
};

/// Why the edge could not serve a stream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EdgeError {
    /// An upstream URL that is not `rtmp://HOST[:PORT]` or `http://HOST[:PORT]`.
    #[error("not an rtmp://HOST[:PORT] or http://HOST[:PORT] upstream: {0}")]
    BadUpstream(String),
    /// No upstream has the stream.
    #[error("no upstream has {0}")]
    NotFound(StreamKey),
    /// No upstream delivered the stream; the last failure.
    #[error("no upstream delivered {0} (last: {1})")]
    NotFoundAfter(StreamKey, String),
    /// An upstream's `/api/streams` failed.
    #[error("upstream API {0}: {1}")]
    Api(SocketAddr, String),
    /// A pull from an upstream failed.
    #[error("pull from {0}: {1}")]
    Pull(SocketAddr, String),
    /// The stream was not found in time.
    #[error("timed out looking for {0}")]
    Timeout(StreamKey),
    /// The server is shutting down.
    #[error("server shutting down")]
    ShuttingDown,
    /// Too many streams are being looked for upstream at once.
    #[error("edge busy: {MAX_LOCATING} streams are being located, try again")]
    Busy,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct EdgeMetrics {
    /// Upstream pulls opened (first pulls and failovers).
    pub pulls_opened: AtomicU64,
    /// Streams a viewer asked for that no upstream delivered, and relays
    /// that lost their upstream for good.
    pub pulls_failed: AtomicU64,
    /// Relays that found their stream again on another upstream.
    pub failovers: AtomicU64,
    /// Viewers sent to the owner edge with a redirect.
    pub redirects: AtomicU64,
}

/// Where one relay stands, for the viewers waiting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Locating,
    Live,
    Failed(String),
}

/// One relayed stream, shared by its task and the edge's table.
#[derive(Debug)]
struct RelayEntry {
    status: watch::Sender<Status>,
    upstream: Mutex<Option<SocketAddr>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The edge. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Edge {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    hub: Hub,
    /// Live applications served (a request for another app pulls nothing).
    apps: Vec<String>,
    upstreams: Vec<UpstreamUrl>,
    /// Port of upstreams' and peers' admin listener (`/api/streams`).
    admin_port: u16,
    idle: Duration,
    /// How long a relay keeps its viewers while looking for the stream
    /// again after its upstream went away (the publisher moving to another
    /// origin), from `edge.failover_secs`.
    failover: Duration,
    mode: BalancingMode,
    peers: Arc<PeerSet>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    relays: Mutex<HashMap<StreamKey, Arc<RelayEntry>>>,
    /// Streams no upstream had a moment ago: not looked for again yet.
    misses: Mutex<RecentMisses<StreamKey>>,
    /// Permits of relays still locating their stream.
    locating: Arc<Semaphore>,
    metrics: EdgeMetrics,
}

impl Edge {
    /// The edge of `config` (`None` unless the role is edge). Upstream URLs
    /// are checked by `Config::validate`; any that do not parse are skipped.
    pub fn from_config(
        config: &Config,
        hub: Hub,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Option<Self> {
        if config.role != crate::config::Role::Edge {
            return None;
        }
        let edge = config.edge.as_ref()?;
        let upstreams = edge
            .upstreams
            .iter()
            .filter_map(|u| match upstream::parse(u) {
                Ok(p) => Some(p),
                Err(e) => {
                    warn!(error = %e, "upstream skipped");
                    None
                }
            })
            .collect();
        Some(Self {
            inner: Arc::new(Inner {
                hub,
                apps: config.apps.iter().map(|a| a.name.clone()).collect(),
                upstreams,
                admin_port: edge.upstream_admin_port,
                idle: Duration::from_secs(edge.idle_timeout_secs.max(1)),
                failover: Duration::from_secs(edge.failover_secs.max(1)),
                mode: edge.balancing.mode,
                peers: Arc::new(PeerSet::new(&edge.balancing, config.http.listen.port())),
                shutdown,
                tasks,
                relays: Mutex::new(HashMap::new()),
                misses: Mutex::new(RecentMisses::new(MISS_TTL, MAX_MISSES)),
                locating: Arc::new(Semaphore::new(MAX_LOCATING)),
                metrics: EdgeMetrics::default(),
            }),
        })
    }

    /// The edge's peer set (shared with the edge cache's pool).
    pub fn peers(&self) -> Arc<PeerSet> {
        Arc::clone(&self.inner.peers)
    }

    /// The balancing mode.
    pub fn mode(&self) -> BalancingMode {
        self.inner.mode
    }

    /// Counters.
    pub fn metrics(&self) -> &EdgeMetrics {
        &self.inner.metrics
    }

    /// Makes `key` live in the local hub, pulling it from an upstream if
    /// needed, and waits (at most [`VIEWER_WAIT`]) until it is.
    pub async fn ensure_live(&self, key: &StreamKey) -> Result<(), EdgeError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(EdgeError::ShuttingDown);
        }
        if !self.inner.apps.contains(&key.app) {
            return Err(EdgeError::NotFound(key.clone()));
        }
        let mut status = {
            let mut relays = lock(&self.inner.relays);
            if let Some(entry) = relays.get(key) {
                entry.status.subscribe()
            } else {
                if self.inner.hub.is_live(key) {
                    // Published here directly.
                    return Ok(());
                }
                if lock(&self.inner.misses).is_recent(key, std::time::Instant::now()) {
                    return Err(EdgeError::NotFound(key.clone()));
                }
                let Ok(permit) = Arc::clone(&self.inner.locating).try_acquire_owned() else {
                    return Err(EdgeError::Busy);
                };
                let entry = Arc::new(RelayEntry {
                    status: watch::Sender::new(Status::Locating),
                    upstream: Mutex::new(None),
                });
                relays.insert(key.clone(), Arc::clone(&entry));
                let rx = entry.status.subscribe();
                // The permit is held while the relay is locating.
                let mut located = entry.status.subscribe();
                self.inner.tasks.spawn(async move {
                    let _ = located.wait_for(|s| *s != Status::Locating).await;
                    drop(permit);
                });
                let (edge, k) = (self.clone(), key.clone());
                self.inner
                    .tasks
                    .spawn(async move { relay::run(edge, k, entry).await });
                rx
            }
        };
        let waited =
            tokio::time::timeout(VIEWER_WAIT, status.wait_for(|s| *s != Status::Locating)).await;
        let missed = |e: EdgeError| {
            lock(&self.inner.misses).record(key, std::time::Instant::now());
            Err(e)
        };
        match waited {
            Err(_) => Err(EdgeError::Timeout(key.clone())),
            Ok(Err(_)) => missed(EdgeError::NotFound(key.clone())),
            Ok(Ok(s)) => match &*s {
                Status::Failed(why) => missed(EdgeError::NotFoundAfter(key.clone(), why.clone())),
                _ => Ok(()),
            },
        }
    }

    /// The upstream a relayed stream comes from now (`rtmp://HOST:PORT`).
    pub fn upstream_of(&self, key: &StreamKey) -> Option<String> {
        let relays = lock(&self.inner.relays);
        let addr = (*lock(&relays.get(key)?.upstream))?;
        Some(format!("rtmp://{addr}"))
    }

    /// The peer owning `key` when it is not this edge (clustered and
    /// redirect modes); `None` when this edge serves it itself.
    pub async fn owner_elsewhere(&self, key: &StreamKey) -> Option<Peer> {
        if self.inner.mode == BalancingMode::Service {
            return None;
        }
        self.inner.peers.owner_elsewhere(&key.to_string()).await
    }

    /// Finds `key` upstream and opens a pull: from the owner peer when
    /// another edge of the pool owns it, else from the upstreams.
    async fn find(&self, key: &StreamKey) -> Result<Pull, EdgeError> {
        let (tasks, shutdown) = (&self.inner.tasks, &self.inner.shutdown);
        if let Some(owner) = self.owner_elsewhere(key).await {
            if let Ok(Some(http)) = tokio::net::lookup_host(&owner.addr)
                .await
                .map(|mut a| a.next())
            {
                let asked = locate::ask(self.admin_addr(http), key).await;
                let candidates = locate::plan(&[asked], &[]);
                match locate::first_pull(&candidates, key, PULL_TIMEOUTS, tasks, shutdown).await {
                    Ok(p) => return Ok(p),
                    // The owner may be leaving: go upstream directly.
                    Err(e) => {
                        debug!(stream = %key, owner = %owner.addr, error = %e, "owner edge failed");
                    }
                }
            } else {
                debug!(owner = %owner.addr, "owner edge does not resolve");
            }
        }
        let http = upstream::resolve(&self.inner.upstreams, Scheme::Http).await;
        let rtmp = upstream::resolve(&self.inner.upstreams, Scheme::Rtmp).await;
        let mut set = tokio::task::JoinSet::new();
        for h in http {
            let (k, admin) = (key.clone(), self.admin_addr(h));
            set.spawn(async move { locate::ask(admin, &k).await });
        }
        let mut asked = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(a) = r {
                asked.push(a);
            }
        }
        asked.sort_by_key(|a| a.http);
        let candidates = locate::plan(&asked, &rtmp);
        if candidates.is_empty() {
            return Err(EdgeError::NotFound(key.clone()));
        }
        locate::first_pull(&candidates, key, PULL_TIMEOUTS, tasks, shutdown).await
    }

    /// The admin address of the Fleetcast server whose public HTTP address
    /// is `http` (same host, `edge.upstream_admin_port`).
    fn admin_addr(&self, http: std::net::SocketAddr) -> std::net::SocketAddr {
        std::net::SocketAddr::new(http.ip(), self.inner.admin_port)
    }

    /// Forgets `entry` if it is still the table's relay for `key`.
    fn remove(&self, key: &StreamKey, entry: &Arc<RelayEntry>) {
        let mut relays = lock(&self.inner.relays);
        if relays.get(key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            relays.remove(key);
        }
    }

    /// Relays holding an upstream pull now.
    pub fn pulls_active(&self) -> usize {
        lock(&self.inner.relays)
            .values()
            .filter(|e| lock(&e.upstream).is_some())
            .count()
    }

    /// The edge's lines for `/metrics` (Prometheus text).
    pub fn render_metrics(&self) -> String {
        let m = &self.inner.metrics;
        let mut out = String::new();
        let counters = [
            (
                "fleetcast_edge_pulls_opened_total",
                "Upstream pulls opened (first pulls and failovers).",
                &m.pulls_opened,
            ),
            (
                "fleetcast_edge_pulls_failed_total",
                "Streams no upstream delivered, and relays that lost their upstream for good.",
                &m.pulls_failed,
            ),
            (
                "fleetcast_edge_failovers_total",
                "Relays that found their stream again on another upstream.",
                &m.failovers,
            ),
            (
                "fleetcast_edge_redirects_total",
                "Viewers redirected to the owner edge.",
                &m.redirects,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP fleetcast_edge_pulls_active Upstream pulls open now.\n# TYPE fleetcast_edge_pulls_active gauge\nfleetcast_edge_pulls_active {}",
            self.pulls_active()
        );
        out
    }
}
