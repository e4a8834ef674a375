//! The origin role's lifecycle: bind the RTMP and HTTP listeners, serve
//! until the shutdown token fires, then stop accepting, tell RTMP clients,
//! let publications (and so recordings) end cleanly, and drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::hub::{Hub, HubConfig};

/// How long connections get to finish after shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What every handler (RTMP, HTTP-FLV, API, and the HLS/VOD routes) shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The stream hub.
    pub hub: Hub,
    /// Fires when the server shuts down; long-lived tasks and responses end on it.
    pub shutdown: CancellationToken,
    /// Connections in flight, RTMP and HTTP together (`limits.max_connections`).
    pub connections: Arc<Semaphore>,
    /// Connections per client address (`limits.max_connections_per_ip`).
    pub per_ip: Arc<crate::peer_limits::PerIpLimit>,
    /// Background tasks to wait for on shutdown (recorders, segmenters, connections).
    pub tasks: TaskTracker,
    /// Set once the server drains: `/readyz` answers 503 (see `drain`).
    pub drain: crate::drain::Drain,
    /// Egress rate over the last seconds, for `/api/stats`.
    pub egress: Arc<crate::stats::EgressMeter>,
    /// Who may publish.
    pub publish_auth: Arc<PublishAuth>,
    /// Who may play.
    pub play_auth: Arc<PlayAuth>,
    /// The edge's live relay (`None` on origins).
    pub edge: Option<crate::edge::Edge>,
    /// The RTMP listener's address once bound (`/api/streams` tells it to
    /// edges pulling from this server).
    pub rtmp_local: Arc<std::sync::OnceLock<SocketAddr>>,
    /// The edge's pull-through cache for HTTP objects and RTMP VOD
    /// (`None` on origins; set by [`AppState::with_edge_cache`]).
    pub cache: Option<crate::cache::EdgeCache>,
}

pub use crate::auth::{PlayAuth, PublishAuth};

impl AppState {
    /// State for `config` with a fresh hub.
    pub fn new(config: Config, shutdown: CancellationToken) -> Self {
        let hub = Hub::new(HubConfig {
            queue_frames: config.limits.viewer_queue_frames,
            release_interval: std::time::Duration::from_millis(config.playback.write_interval_ms),
            ..HubConfig::default()
        });
        let connections = Arc::new(Semaphore::new(config.limits.max_connections));
        let per_ip = crate::peer_limits::PerIpLimit::new(config.limits.max_connections_per_ip);
        let publish_auth = Arc::new(PublishAuth::from_config(&config));
        let play_auth = Arc::new(PlayAuth::from_config(&config));
        play_auth.sign_upstream_requests();
        let tasks = TaskTracker::new();
        let edge =
            crate::edge::Edge::from_config(&config, hub.clone(), shutdown.clone(), tasks.clone());
        Self {
            config: Arc::new(config),
            hub,
            shutdown,
            connections,
            per_ip,
            drain: crate::drain::Drain::default(),
            egress: Arc::default(),
            tasks,
            publish_auth,
            play_auth,
            edge,
            rtmp_local: Arc::default(),
            cache: None,
        }
    }

    /// On an edge, starts the pull-through cache (empties `edge.cache.dir`);
    /// origins are returned as they are.
    pub fn with_edge_cache(mut self) -> Result<Self, crate::cache::CacheError> {
        if self.config.role == crate::config::Role::Edge
            && let Some(edge) = &self.config.edge
        {
            let port = self.config.http.listen.port();
            let cache = match &self.edge {
                Some(e) => crate::cache::EdgeCache::with_peers(edge, e.peers())?,
                None => crate::cache::EdgeCache::new(edge, port)?,
            };
            self.cache = Some(cache);
        }
        Ok(self)
    }
}

/// Listeners bound by [`bind`], with their actual addresses (port 0 resolved).
#[derive(Debug)]
pub struct Listeners {
    /// RTMP.
    pub rtmp: TcpListener,
    /// HTTP (public: playback and health).
    pub http: TcpListener,
    /// Admin HTTP (API, metrics, health).
    pub admin: TcpListener,
}

/// Binds the listeners of `config`.
pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
    let rtmp = TcpListener::bind(config.rtmp.listen).await?;
    let http = TcpListener::bind(config.http.listen).await?;
    let admin = TcpListener::bind(config.admin.listen).await?;
    Ok(Listeners { rtmp, http, admin })
}

/// Serves the origin role on bound listeners until `state.shutdown` fires,
/// then drains.
pub async fn run(listeners: Listeners, mut state: AppState) -> std::io::Result<()> {
    if state.cache.is_none() {
        state = state.with_edge_cache().map_err(std::io::Error::other)?;
    }
    let rtmp_addr = listeners.rtmp.local_addr()?;
    let http_addr = listeners.http.local_addr()?;
    let admin_addr = listeners.admin.local_addr()?;
    info!(rtmp = %rtmp_addr, http = %http_addr, admin = %admin_addr, "listening");
    let _ = state.rtmp_local.set(rtmp_addr);

    // Recorders follow publications on `state.tasks` and finish their files
    // when `state.shutdown` fires; the drain below waits for them.
    crate::record::start(&state);
    crate::stats::spawn_sampler(&state);
    let rtmp_task = tokio::spawn(accept_rtmp(listeners.rtmp, state.clone()));
    let http_task = tokio::spawn(crate::http::serve(listeners.http, state.clone()));
    let admin_task = tokio::spawn(crate::admin::serve(listeners.admin, state.clone()));

    state.shutdown.cancelled().await;
    info!("shutting down: no new connections, telling clients, draining");
    state.hub.close();
    let _ = rtmp_task.await;
    state.tasks.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, state.tasks.wait())
        .await
        .is_err()
    {
        warn!("some connections did not finish within {DRAIN_TIMEOUT:?}");
    }
    match tokio::time::timeout(DRAIN_TIMEOUT, http_task).await {
        Ok(Ok(Err(e))) => warn!(error = %e, "HTTP server ended with an error"),
        Err(_) => warn!("HTTP server did not drain within {DRAIN_TIMEOUT:?}"),
        _ => {}
    }
    if let Ok(Ok(Err(e))) = tokio::time::timeout(DRAIN_TIMEOUT, admin_task).await {
        warn!(error = %e, "admin server ended with an error");
    }
    info!("stopped");
    Ok(())
}

async fn accept_rtmp(listener: TcpListener, state: AppState) {
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&state.connections).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            () = state.shutdown.cancelled() => return,
        };
        let (socket, peer): (TcpStream, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    warn!(error = %e, "RTMP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = state.shutdown.cancelled() => return,
        };
        let Some(slot) = state.per_ip.try_acquire(peer.ip()) else {
            refuse_per_ip(&state, peer, "RTMP");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let metrics = Arc::clone(state.hub.metrics());
        metrics.rtmp_connections.fetch_add(1, Ordering::Relaxed);
        metrics
            .rtmp_connections_total
            .fetch_add(1, Ordering::Relaxed);
        let st = state.clone();
        state.tasks.spawn(async move {
            crate::rtmp::conn::serve(socket, peer, st).await;
            metrics.rtmp_connections.fetch_sub(1, Ordering::Relaxed);
            drop((permit, slot));
        });
    }
}

/// Logs and counts a connection closed at accept for its address's limit.
pub fn refuse_per_ip(state: &AppState, peer: SocketAddr, protocol: &str) {
    state
        .hub
        .metrics()
        .refused
        .count(crate::peer_limits::Refusal::PerIpLimit);
    if state.per_ip.log_due() {
        warn!(
            %peer,
            limit = state.config.limits.max_connections_per_ip,
            "{protocol} connection refused: too many connections from this address (logged once a second, all counted)"
        );
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
