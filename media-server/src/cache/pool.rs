//! Clustered edges share one cache: each object has an owner edge, chosen
//! by rendezvous hashing of its cache key over the pool's live peers
//! (`crate::edge::rendezvous`, the same owner choice live streams use). A
//! non-owner fetches the object from the owner instead of the upstream and
//! keeps it in memory only, so the upstream sees one fetch per object per
//! pool and the pool's disk capacity adds up. A request from a peer is
//! always fetched upstream by its receiver, so two edges that disagree on
//! the owner for a moment never forward to each other in a loop.

use crate::config::{BalancingMode, EdgeConfig};
use crate::edge::peers::PeerSet;
use crate::edge::rendezvous;

/// Where a miss is fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The upstreams (this edge owns the object, or is not clustered).
    Upstream,
    /// The owner peer at this `HOST:PORT`.
    Peer(String),
}

/// The pool of a clustered (or redirect-mode) edge.
#[derive(Debug)]
pub struct Pool {
    peers: PeerSet,
}

impl Pool {
    /// The pool of `edge`, or `None` when it balances as `service` or does
    /// not know its own address.
    pub fn of(edge: &EdgeConfig, http_port: u16) -> Option<Self> {
        let b = &edge.balancing;
        (b.mode != BalancingMode::Service && b.advertise.is_some()).then(|| Self {
            peers: PeerSet::new(b, http_port),
        })
    }

    /// Where to fetch `key` from now.
    pub async fn route(&self, key: &str) -> Route {
        let Some(me) = self.peers.me() else {
            return Route::Upstream;
        };
        let live = self.peers.live().await;
        match rendezvous::owner(key, &live) {
            Some(owner) if owner.addr != me => Route::Peer(owner.addr.clone()),
            _ => Route::Upstream,
        }
    }
}
