//! Counters of the edge cache, rendered into `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a request was answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The memory tier.
    Memory,
    /// The disk tier.
    Disk,
}

/// Atomic counters; `render` adds them to the Prometheus text.
#[derive(Debug, Default)]
pub struct CacheMetrics {
    pub(super) hits_memory: AtomicU64,
    pub(super) hits_disk: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) revalidations: AtomicU64,
    pub(super) not_modified: AtomicU64,
    pub(super) stale_served: AtomicU64,
    pub(super) upstream_requests: AtomicU64,
    pub(super) upstream_bytes: AtomicU64,
    pub(super) upstream_errors: AtomicU64,
    pub(super) peer_requests: AtomicU64,
    pub(super) bytes_served_memory: AtomicU64,
    pub(super) bytes_served_disk: AtomicU64,
    pub(super) pass_through: AtomicU64,
    pub(super) pass_through_bytes: AtomicU64,
}

impl CacheMetrics {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Bytes of object bodies sent to clients (both tiers).
    pub fn bytes_served(&self) -> u64 {
        self.bytes_served_memory.load(Ordering::Relaxed)
            + self.bytes_served_disk.load(Ordering::Relaxed)
    }

    /// Requests answered from a tier without asking the upstream.
    pub fn hits(&self, tier: Tier) -> u64 {
        match tier {
            Tier::Memory => self.hits_memory.load(Ordering::Relaxed),
            Tier::Disk => self.hits_disk.load(Ordering::Relaxed),
        }
    }

    /// Requests sent upstream (fetches and revalidations).
    pub fn upstream_requests(&self) -> u64 {
        self.upstream_requests.load(Ordering::Relaxed)
    }

    /// Requests answered by passing the upstream's answer through (objects
    /// too large to cache).
    pub fn pass_through(&self) -> u64 {
        self.pass_through.load(Ordering::Relaxed)
    }

    /// Appends the cache's families; `memory_bytes`/`disk_bytes` are the
    /// tiers' current sizes.
    pub fn render(&self, out: &mut String, memory_bytes: u64, disk_bytes: u64) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        family(
            "fleetcast_media_cache_hits_total",
            "counter",
            "Edge cache requests answered without the upstream, by tier.",
            &[
                ("{tier=\"memory\"}", load(&self.hits_memory)),
                ("{tier=\"disk\"}", load(&self.hits_disk)),
            ],
        );
        family(
            "fleetcast_media_cache_misses_total",
            "counter",
            "Edge cache requests for objects not held (coalesced misses count each).",
            &[("", load(&self.misses))],
        );
        family(
            "fleetcast_media_cache_revalidations_total",
            "counter",
            "Stale objects revalidated upstream, and of those found unchanged (304).",
            &[
                ("{result=\"any\"}", load(&self.revalidations)),
                ("{result=\"not_modified\"}", load(&self.not_modified)),
            ],
        );
        family(
            "fleetcast_media_cache_stale_served_total",
            "counter",
            "Stale objects served because the upstream could not be reached.",
            &[("", load(&self.stale_served))],
        );
        family(
            "fleetcast_media_cache_upstream_requests_total",
            "counter",
            "Requests the edge cache sent upstream (fetches and revalidations).",
            &[("", load(&self.upstream_requests))],
        );
        family(
            "fleetcast_media_cache_upstream_bytes_total",
            "counter",
            "Body bytes the edge cache received from upstreams.",
            &[("", load(&self.upstream_bytes))],
        );
        family(
            "fleetcast_media_cache_upstream_errors_total",
            "counter",
            "Fetches that failed (unreachable upstream, error status, broken transfer).",
            &[("", load(&self.upstream_errors))],
        );
        family(
            "fleetcast_media_cache_peer_requests_total",
            "counter",
            "Misses fetched from the owner edge of a clustered pool.",
            &[("", load(&self.peer_requests))],
        );
        family(
            "fleetcast_media_cache_served_bytes_total",
            "counter",
            "Body bytes the edge cache answered with, by tier.",
            &[
                ("{tier=\"memory\"}", load(&self.bytes_served_memory)),
                ("{tier=\"disk\"}", load(&self.bytes_served_disk)),
            ],
        );
        family(
            "fleetcast_media_cache_pass_through_total",
            "counter",
            "Requests for objects too large to cache, answered by the upstream's own response passed through.",
            &[("", load(&self.pass_through))],
        );
        family(
            "fleetcast_media_cache_pass_through_bytes_total",
            "counter",
            "Body bytes passed through from upstreams without caching.",
            &[("", load(&self.pass_through_bytes))],
        );
        family(
            "fleetcast_media_cache_size_bytes",
            "gauge",
            "Bytes held by each tier of the edge cache.",
            &[
                ("{tier=\"memory\"}", memory_bytes),
                ("{tier=\"disk\"}", disk_bytes),
            ],
        );
    }
}
