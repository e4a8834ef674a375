//! The edge role: upstreams, the pull-through cache and how edges of one
//! pool share streams.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::DEFAULT_ADMIN_PORT;

/// Edge role settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Where streams and files come from: `rtmp://HOST:PORT` and `http://HOST:PORT` URLs.
    pub upstreams: Vec<String>,
    /// Seconds an upstream pull stays open after its last viewer leaves.
    pub idle_timeout_secs: u64,
    /// Seconds a relayed stream whose upstream went away is kept (its
    /// viewers connected) while the edge looks for it again. It must cover
    /// the publisher reconnecting to another origin plus the cluster DNS
    /// catching up with a replacement origin pod (`CoreDNS` caches headless
    /// Service records for 30 s in a default cluster).
    pub failover_secs: u64,
    /// Pull-through cache for HTTP objects (HLS segments, VOD files).
    pub cache: CacheConfig,
    /// How edges of one pool share streams.
    pub balancing: BalancingConfig,
    /// The admin port of upstreams and peer edges: an edge asks
    /// `http://HOST:THIS/api/streams` to locate a stream.
    pub upstream_admin_port: u16,
}

/// Edge cache tiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Directory of the disk tier.
    pub dir: PathBuf,
    /// Bytes of the memory tier.
    pub memory_bytes: u64,
    /// Bytes of the disk tier; 0 = no disk tier (memory only; objects
    /// too large for memory are passed through).
    pub disk_bytes: u64,
    /// Milliseconds a live playlist (`.m3u8`) is served from the cache
    /// before it is fetched again.
    pub playlist_ttl_ms: u64,
    /// Seconds a VOD file is served without asking the upstream; after
    /// that the next request revalidates it (`If-None-Match`). 0 = every
    /// request revalidates.
    pub revalidate_secs: u64,
}

/// How edges of one pool divide the work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BalancingConfig {
    /// `service`, `clustered` or `redirect`.
    pub mode: BalancingMode,
    /// Peer edges as `HOST:PORT` (static list).
    pub peers: Vec<String>,
    /// A headless Service name whose addresses are the peers (resolved continually).
    pub peer_service: Option<String>,
    /// The address this edge gives viewers it redirects or peers that fetch from it.
    pub advertise: Option<String>,
}

/// Balancing mode of an edge pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BalancingMode {
    /// Plain Kubernetes Service spreading; every edge pulls on its own.
    #[default]
    Service,
    /// Any edge accepts; the owner of a stream (rendezvous hashing) pulls it, others fetch from it.
    Clustered,
    /// Non-owners redirect viewers to the owner edge.
    Redirect,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            idle_timeout_secs: 30,
            failover_secs: 45,
            cache: CacheConfig::default(),
            balancing: BalancingConfig::default(),
            upstream_admin_port: DEFAULT_ADMIN_PORT,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/cache"),
            memory_bytes: 256 * 1024 * 1024,
            disk_bytes: 10 * 1024 * 1024 * 1024,
            playlist_ttl_ms: 1000,
            revalidate_secs: 30,
        }
    }
}

impl Default for BalancingConfig {
    fn default() -> Self {
        Self {
            mode: BalancingMode::Service,
            peers: Vec::new(),
            peer_service: None,
            advertise: None,
        }
    }
}

pub(super) fn validate_edge(edge: &EdgeConfig, bad: &mut impl FnMut(&str, String)) {
    if edge.upstreams.is_empty() {
        bad(
            "edge.upstreams",
            "an edge needs at least one upstream".into(),
        );
    }
    for (i, up) in edge.upstreams.iter().enumerate() {
        let rest = up
            .strip_prefix("rtmp://")
            .or_else(|| up.strip_prefix("http://"));
        match rest {
            Some(hostport) if !hostport.is_empty() && !hostport.contains('/') => {}
            _ => bad(
                &format!("edge.upstreams[{i}]"),
                format!("{up:?} is not rtmp://HOST[:PORT] or http://HOST[:PORT]"),
            ),
        }
    }
    if edge.upstream_admin_port == 0 {
        bad(
            "edge.upstream_admin_port",
            "must be a port, 1..=65535".into(),
        );
    }
    if edge.idle_timeout_secs == 0 {
        bad("edge.idle_timeout_secs", "must be at least 1".into());
    }
    if edge.cache.memory_bytes == 0 {
        bad("edge.cache.memory_bytes", "must be at least 1".into());
    }
    if edge.cache.playlist_ttl_ms > 60_000 {
        bad(
            "edge.cache.playlist_ttl_ms",
            "at most 60000: live playlists change every segment".into(),
        );
    }
    let b = &edge.balancing;
    if b.mode != BalancingMode::Service && b.peers.is_empty() && b.peer_service.is_none() {
        bad(
            "edge.balancing",
            "clustered and redirect modes need peers or peer_service".into(),
        );
    }
    if b.mode == BalancingMode::Redirect && b.advertise.is_none() {
        bad(
            "edge.balancing.advertise",
            "redirect mode needs the address to send viewers to".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn disk_bytes_zero_means_no_disk_tier_and_is_valid() {
        let c = Config::from_yaml_str(
            "role: edge\nedge: { upstreams: [\"http://o:8080\"], cache: { disk_bytes: 0 } }\n",
        )
        .unwrap();
        assert_eq!(c.edge.as_ref().unwrap().cache.disk_bytes, 0);
        c.validate().unwrap();
        let zero_memory = Config::from_yaml_str(
            "role: edge\nedge: { upstreams: [\"http://o:8080\"], cache: { memory_bytes: 0 } }\n",
        )
        .unwrap();
        let err = zero_memory.validate().unwrap_err().to_string();
        assert!(err.contains("edge.cache.memory_bytes"), "{err}");
    }
}
