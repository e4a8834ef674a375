//! Clustered edges share one cache: each object has an owner edge, chosen
//! by rendezvous hashing of its cache key over the pool's live peers
//! (`crate::edge::rendezvous`, the same owner choice live streams use). A
//! non-owner fetches the object from the owner instead of the upstream and
//! keeps it in memory only, so the upstream sees one fetch per object per
//! pool and the pool's disk capacity adds up. A request from a peer is
//! always fetched upstream by its receiver, so two edges that disagree on
//! the owner for a moment never forward to each other in a loop.

use std::sync::Arc;

use crate::config::{BalancingMode, EdgeConfig};
use crate::edge::peers::PeerSet;

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
    peers: Arc<PeerSet>,
}

impl Pool {
    /// The pool of `edge` over `peers` (the edge's one peer set), or `None`
    /// when it balances as `service` or does not know its own address.
    pub fn of(edge: &EdgeConfig, peers: Arc<PeerSet>) -> Option<Self> {
        let b = &edge.balancing;
        (b.mode != BalancingMode::Service && b.advertise.is_some()).then_some(Self { peers })
    }

    /// Where to fetch `key` from now.
    pub async fn route(&self, key: &str) -> Route {
        match self.peers.owner_elsewhere(key).await {
            Some(owner) => Route::Peer(owner.addr),
            None => Route::Upstream,
        }
    }
}
