//! The pool an edge belongs to (clustered and redirect balancing): its
//! peers' advertised HTTP addresses, from the static `balancing.peers` list
//! or from the A records of a headless Service (`balancing.peer_service`,
//! only ready pods are listed), resolved again on each lookup, and this
//! edge's own address (`balancing.advertise`). Static peers count as live
//! while their `/readyz` answers 200 (checked at most every [`HEALTH_TTL`]):
//! a peer that died or drains leaves the set, and its streams move to the
//! next peer by rendezvous. The checks run concurrently, each bounded by
//! [`PROBE_TIMEOUT`], and one request refreshes them while the others wait
//! for its answer. One set per edge, shared by the live relay and the cache.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::join_all;

use tokio::time::Instant;
use tracing::debug;

use super::rendezvous::Peer;
use crate::config::BalancingConfig;

/// How long a static peer's readiness answer is trusted.
pub const HEALTH_TTL: Duration = Duration::from_secs(2);
/// How long resolving and asking one static peer may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the peer set comes from.
#[derive(Debug)]
pub struct PeerSet {
    statics: Vec<String>,
    service: Option<String>,
    /// HTTP port of peers found through the Service (the same as ours).
    port: u16,
    me: Option<String>,
    /// The static peers that were ready at the last check, and when.
    health: Mutex<Option<(Instant, Vec<String>)>>,
    /// Held by the one request refreshing `health`.
    refresh: tokio::sync::Mutex<()>,
}

impl PeerSet {
    /// The peer set of `balancing`; `http_port` is this edge's HTTP port.
    pub fn new(balancing: &BalancingConfig, http_port: u16) -> Self {
        Self {
            statics: balancing.peers.iter().map(|p| canonical(p)).collect(),
            service: balancing.peer_service.clone(),
            port: http_port,
            me: balancing.advertise.as_deref().map(canonical),
            health: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// This edge's advertised address.
    pub fn me(&self) -> Option<&str> {
        self.me.as_deref()
    }

    /// The peer owning `key` (by rendezvous over the live peers) when it
    /// is not this edge; `None` when this edge owns it or has no address.
    pub async fn owner_elsewhere(&self, key: &str) -> Option<Peer> {
        let me = self.me()?;
        let live = self.live().await;
        let owner = super::rendezvous::owner(key, &live)?;
        (owner.addr != me).then(|| owner.clone())
    }

    /// The live peers now, this edge included, sorted.
    pub async fn live(&self) -> Vec<Peer> {
        let mut addrs = self.ready_statics().await;
        if let Some(service) = &self.service {
            let target = if service.contains(':') {
                service.clone()
            } else {
                format!("{service}:{}", self.port)
            };
            match tokio::net::lookup_host(&target).await {
                Ok(found) => addrs.extend(found.map(|a: SocketAddr| a.to_string())),
                Err(e) => debug!(%target, error = %e, "peer service does not resolve"),
            }
        }
        merge(addrs, self.me.as_deref())
    }
}

impl PeerSet {
    /// The static peers that answered `/readyz` with 200 lately (this edge
    /// counts as ready without asking).
    async fn ready_statics(&self) -> Vec<String> {
        if self.statics.is_empty() {
            return Vec::new();
        }
        if let Some(ready) = self.fresh() {
            return ready;
        }
        // Single flight: whoever gets the lock first probes; the others
        // find its fresh answer when they get it.
        let _refreshing = self.refresh.lock().await;
        if let Some(ready) = self.fresh() {
            return ready;
        }
        let me = self.me.as_deref();
        let checks = self.statics.iter().map(|peer| async move {
            let ok = Some(peer.as_str()) == me || probe(peer).await;
            if !ok {
                debug!(%peer, "peer not ready: left out of the pool");
            }
            ok.then(|| peer.clone())
        });
        let ready: Vec<String> = join_all(checks).await.into_iter().flatten().collect();
        *super::lock(&self.health) = Some((Instant::now(), ready.clone()));
        ready
    }

    /// The last readiness answer while it is trusted.
    fn fresh(&self) -> Option<Vec<String>> {
        match &*super::lock(&self.health) {
            Some((at, ready)) if at.elapsed() < HEALTH_TTL => Some(ready.clone()),
            _ => None,
        }
    }
}

/// True when `peer` resolves and answers `/readyz` with 200 within
/// [`PROBE_TIMEOUT`].
async fn probe(peer: &str) -> bool {
    let ask = async {
        match tokio::net::lookup_host(peer).await.map(|mut a| a.next()) {
            Ok(Some(addr)) => {
                matches!(super::locate::http_get(addr, "/readyz").await, Ok((200, _)))
            }
            _ => false,
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, ask)
        .await
        .unwrap_or(false)
}

/// A peer address in one spelling, so the same peer compares equal however
/// it was written: an IP socket address as it prints (`[fd00::5]:8080`,
/// which is what a Service lookup yields); an unbracketed IPv6 address with
/// a port (`fd00::5:8080`) is read as such; host names are kept as written.
pub fn canonical(addr: &str) -> String {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return a.to_string();
    }
    if let Some((ip, port)) = addr.rsplit_once(':')
        && let (Ok(ip), Ok(port)) = (ip.parse::<std::net::Ipv6Addr>(), port.parse::<u16>())
    {
        return SocketAddr::from((ip, port)).to_string();
    }
    addr.to_owned()
}

/// The sorted, deduplicated peer list with `me` in it.
pub fn merge(mut addrs: Vec<String>, me: Option<&str>) -> Vec<Peer> {
    if let Some(me) = me {
        addrs.push(me.to_owned());
    }
    addrs.sort();
    addrs.dedup();
    addrs.into_iter().map(Peer::new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_self_once_and_sorts() {
        let peers = merge(
            vec![
                "10.0.0.2:8080".into(),
                "10.0.0.1:8080".into(),
                "10.0.0.2:8080".into(),
            ],
            Some("10.0.0.1:8080"),
        );
        let addrs: Vec<&str> = peers.iter().map(|p| p.addr.as_str()).collect();
        assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.2:8080"]);
    }

    #[test]
    fn addresses_compare_as_socket_addresses() {
        assert_eq!(canonical("[fd00::5]:8080"), "[fd00::5]:8080");
        assert_eq!(canonical("fd00::5:8080"), "[fd00::5]:8080");
        assert_eq!(canonical("[fd00:0:0::5]:8080"), "[fd00::5]:8080");
        assert_eq!(canonical("10.0.0.1:8080"), "10.0.0.1:8080");
        assert_eq!(canonical("edge-0.edges:8080"), "edge-0.edges:8080");
        let b = BalancingConfig {
            peers: vec!["fd00::6:8080".into()],
            advertise: Some("fd00::5:8080".into()),
            ..BalancingConfig::default()
        };
        let set = PeerSet::new(&b, 8080);
        assert_eq!(set.me(), Some("[fd00::5]:8080"));
        let peers = merge(vec!["[fd00::5]:8080".into()], set.me());
        assert_eq!(
            peers.len(),
            1,
            "a Service's address of this edge is this edge"
        );
    }

    #[tokio::test]
    async fn static_peers_that_do_not_answer_are_left_out() {
        // Nothing listens on a port just freed.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let b = BalancingConfig {
            peers: vec![dead.to_string(), "127.0.0.2:9000".into()],
            advertise: Some("127.0.0.2:9000".into()),
            ..BalancingConfig::default()
        };
        let set = PeerSet::new(&b, 9000);
        let addrs: Vec<String> = set.live().await.into_iter().map(|p| p.addr).collect();
        assert_eq!(addrs, ["127.0.0.2:9000"]);
    }

    #[tokio::test]
    async fn concurrent_lookups_probe_each_peer_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ready = listener.local_addr().unwrap();
        let probes = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&probes);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        });
        let b = BalancingConfig {
            peers: vec![ready.to_string(), "127.0.0.2:9000".into()],
            advertise: Some("127.0.0.2:9000".into()),
            ..BalancingConfig::default()
        };
        let set = PeerSet::new(&b, 9000);
        let lookups = (0..20).map(|_| set.live());
        for live in join_all(lookups).await {
            assert_eq!(live.len(), 2);
        }
        assert_eq!(probes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn service_peers_take_our_http_port() {
        let b = BalancingConfig {
            peer_service: Some("127.0.0.1".into()),
            advertise: Some("127.0.0.2:9000".into()),
            ..BalancingConfig::default()
        };
        let set = PeerSet::new(&b, 9000);
        let addrs: Vec<String> = set.live().await.into_iter().map(|p| p.addr).collect();
        assert_eq!(addrs, ["127.0.0.1:9000", "127.0.0.2:9000"]);
        assert_eq!(set.me(), Some("127.0.0.2:9000"));
    }
}
