//! A short negative cache of stream keys no upstream had, so requests for
//! names that do not exist (a client trying random names) do not each start
//! a relay asking every upstream. Pure: the caller passes the time.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long "no upstream has it" is believed.
pub const MISS_TTL: Duration = Duration::from_secs(2);
/// Entries kept at most (expired ones are dropped first, then the oldest).
pub const MAX_MISSES: usize = 4096;

/// Keys recently not found, with when.
#[derive(Debug)]
pub struct RecentMisses<K> {
    ttl: Duration,
    max: usize,
    at: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> RecentMisses<K> {
    /// Misses believed for `ttl`, at most `max` remembered.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max: max.max(1),
            at: HashMap::new(),
        }
    }

    /// True when `key` was not found less than the TTL before `now`.
    pub fn is_recent(&self, key: &K, now: Instant) -> bool {
        self.at
            .get(key)
            .is_some_and(|t| now.saturating_duration_since(*t) < self.ttl)
    }

    /// Remembers that `key` was not found at `now`.
    pub fn record(&mut self, key: &K, now: Instant) {
        if self.at.len() >= self.max {
            let ttl = self.ttl;
            self.at
                .retain(|_, t| now.saturating_duration_since(*t) < ttl);
        }
        if self.at.len() >= self.max
            && let Some(oldest) = self
                .at
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
        {
            self.at.remove(&oldest);
        }
        self.at.insert(key.clone(), now);
    }

    /// Forgets `key` (it was found after all, e.g. published here).
    pub fn forget(&mut self, key: &K) {
        self.at.remove(key);
    }

    /// Keys remembered (expired ones included until pruned).
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_is_believed_for_the_ttl_only() {
        let t0 = Instant::now();
        let mut m = RecentMisses::new(Duration::from_secs(2), 10);
        assert!(!m.is_recent(&"a", t0));
        m.record(&"a", t0);
        assert!(m.is_recent(&"a", t0 + Duration::from_millis(1999)));
        assert!(!m.is_recent(&"a", t0 + Duration::from_secs(2)));
        assert!(!m.is_recent(&"b", t0));
        m.forget(&"a");
        assert!(!m.is_recent(&"a", t0));
    }

    #[test]
    fn the_table_stays_bounded() {
        let t0 = Instant::now();
        let mut m = RecentMisses::new(Duration::from_secs(2), 3);
        for i in 0..100u32 {
            m.record(&i, t0 + Duration::from_millis(u64::from(i)));
            assert!(m.len() <= 3);
        }
        // The newest are kept.
        assert!(m.is_recent(&99, t0 + Duration::from_millis(100)));
        assert!(!m.is_recent(&0, t0 + Duration::from_millis(100)));
    }
}
