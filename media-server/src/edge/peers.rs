//! The pool an edge belongs to (clustered and redirect balancing): its
//! peers' advertised HTTP addresses, from the static `balancing.peers` list
//! or from the A records of a headless Service (`balancing.peer_service`,
//! only ready pods are listed), resolved again on each lookup, and this
//! edge's own address (`balancing.advertise`). Static peers count as live
//! while their `/readyz` answers 200 (checked at most every [`HEALTH_TTL`]):
//! a peer that died or drains leaves the set, and its streams move to the
//! next peer by rendezvous.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use super::rendezvous::Peer;
use crate::config::BalancingConfig;

/// How long a static peer's readiness answer is trusted.
pub const HEALTH_TTL: Duration = Duration::from_secs(2);

/// Where the peer set comes from.
#[derive(Debug)]
pub struct PeerSet {
    statics: Vec<String>,
    service: Option<String>,
    /// HTTP port of peers found through the Service (the same as ours).
    port: u16,
    me: Option<String>,
    /// Static peers' last readiness answers.
    health: Mutex<HashMap<String, (Instant, bool)>>,
}

impl PeerSet {
    /// The peer set of `balancing`; `http_port` is this edge's HTTP port.
    pub fn new(balancing: &BalancingConfig, http_port: u16) -> Self {
        Self {
            statics: balancing.peers.clone(),
            service: balancing.peer_service.clone(),
            port: http_port,
            me: balancing.advertise.clone(),
            health: Mutex::new(HashMap::new()),
        }
    }

    /// This edge's advertised address.
    pub fn me(&self) -> Option<&str> {
        self.me.as_deref()
    }

    /// The live peers now, this edge included, sorted.
    pub async fn live(&self) -> Vec<Peer> {
        let mut addrs = Vec::new();
        for peer in &self.statics {
            if Some(peer.as_str()) == self.me.as_deref() || self.ready(peer).await {
                addrs.push(peer.clone());
            }
        }
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
    /// True when the static `peer` answered `/readyz` with 200 lately.
    async fn ready(&self, peer: &str) -> bool {
        let cached = super::lock(&self.health).get(peer).copied();
        if let Some((at, ok)) = cached
            && at.elapsed() < HEALTH_TTL
        {
            return ok;
        }
        let ok = match tokio::net::lookup_host(peer).await.map(|mut a| a.next()) {
            Ok(Some(addr)) => {
                matches!(super::locate::http_get(addr, "/readyz").await, Ok((200, _)))
            }
            _ => false,
        };
        if !ok {
            debug!(%peer, "peer not ready: left out of the pool");
        }
        super::lock(&self.health).insert(peer.to_owned(), (Instant::now(), ok));
        ok
    }
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
