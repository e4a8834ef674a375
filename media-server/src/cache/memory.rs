//! The memory tier: small objects (playlists, segments, small files) as
//! shared bytes, bounded by their total size (`edge.cache.memory_bytes`),
//! least recently used evicted first.

use std::sync::Arc;

use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::{Data, Object};

/// Bytes counted per entry on top of its body (key, headers, bookkeeping).
const ENTRY_OVERHEAD: u32 = 512;

/// Objects held in memory, by cache key.
#[derive(Clone)]
pub struct MemoryTier {
    cache: Cache<String, Arc<Object>>,
}

impl MemoryTier {
    /// A tier holding at most `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .weigher(|k: &String, o: &Arc<Object>| {
                let body = match &o.data {
                    Data::Memory(b) => u32::try_from(b.len()).unwrap_or(u32::MAX),
                    Data::Disk(_) => 0,
                };
                let key = u32::try_from(k.len()).unwrap_or(u32::MAX);
                body.saturating_add(key).saturating_add(ENTRY_OVERHEAD)
            })
            // LRU rather than moka's default TinyLFU: a just-fetched object
            // must be admitted, or every first request would miss twice.
            .eviction_policy(EvictionPolicy::lru())
            .build();
        Self { cache }
    }

    /// The object under `key`, if held.
    pub fn get(&self, key: &str) -> Option<Arc<Object>> {
        self.cache.get(key)
    }

    /// Holds `object` (with [`Data::Memory`]) under `key`, replacing any other.
    pub fn insert(&self, key: &str, object: Arc<Object>) {
        self.cache.insert(key.to_owned(), object);
        self.cache.run_pending_tasks();
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &str) {
        self.cache.invalidate(key);
    }

    /// Bytes held (weighted), after pending evictions.
    pub fn bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::cache::test_object;

    #[test]
    fn evicts_least_recently_used_beyond_capacity() {
        let tier = MemoryTier::new(10_000);
        for i in 0..5 {
            tier.insert(
                &format!("/k{i}"),
                test_object(Data::Memory(Bytes::from(vec![0u8; 3000]))),
            );
            // Touch k0 so it stays the most recently used.
            let _ = tier.get("/k0");
        }
        assert!(tier.bytes() <= 10_000, "{}", tier.bytes());
        assert!(tier.get("/k0").is_some());
        assert!(tier.get("/k4").is_some());
        assert!(tier.get("/k1").is_none());
    }

    #[test]
    fn an_object_larger_than_the_tier_is_not_kept() {
        let tier = MemoryTier::new(1000);
        tier.insert(
            "/big",
            test_object(Data::Memory(Bytes::from(vec![0u8; 5000]))),
        );
        assert!(tier.get("/big").is_none());
        assert_eq!(tier.bytes(), 0);
    }
}
