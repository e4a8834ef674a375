//! The disk tier: whole objects as files under `edge.cache.dir/objects/`,
//! bounded by their total size (`edge.cache.disk_bytes`), least recently
//! used evicted first.
//!
//! Files are named by a counter, never by the request path, so no path can
//! leave the directory and a replaced object never shares a name with its
//! successor. A file is deleted when the last holder of its [`DiskFile`]
//! lets go: eviction drops the index's hold, and a response or RTMP
//! playback still reading the file keeps it until it is done (on Unix an
//! open file outlives its name anyway). The directory is emptied at start:
//! the index lives in memory, so files of an earlier run are unknown.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::{Data, Object};

/// Weights are in KiB: moka weighs with u32, and files may pass 4 GiB.
const UNIT: u64 = 1024;

/// A cached file. Deleted when the index evicts it and no reader has it
/// pinned, or when dropped (a download never indexed).
#[derive(Debug)]
pub struct DiskFile {
    path: PathBuf,
    state: Mutex<FileState>,
}

#[derive(Debug, Default)]
struct FileState {
    evicted: bool,
    readers: u32,
    deleted: bool,
}

/// Keeps a cached file on disk while a reader opens it.
#[derive(Debug)]
pub struct ReadPin(Arc<DiskFile>);

impl Drop for ReadPin {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.readers -= 1;
        if st.evicted && st.readers == 0 {
            self.0.delete(&mut st);
        }
    }
}

impl DiskFile {
    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pins the file for a reader; `None` when it was evicted and deleted
    /// already (ask the cache again).
    pub fn pin(self: &Arc<Self>) -> Option<ReadPin> {
        let mut st = self.lock();
        if st.deleted {
            return None;
        }
        st.readers += 1;
        Some(ReadPin(Arc::clone(self)))
    }

    /// The index let go: delete now, or when the last reader unpins.
    fn evict(&self) {
        let mut st = self.lock();
        st.evicted = true;
        if st.readers == 0 {
            self.delete(&mut st);
        }
    }

    fn delete(&self, st: &mut FileState) {
        if st.deleted {
            return;
        }
        st.deleted = true;
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "removing cache file");
        }
    }
}

impl Drop for DiskFile {
    fn drop(&mut self) {
        let mut st = std::mem::take(self.state.get_mut().unwrap_or_else(PoisonError::into_inner));
        self.delete(&mut st);
    }
}

/// Objects held on disk, by cache key.
#[derive(Clone)]
pub struct DiskTier {
    dir: PathBuf,
    cache: Cache<String, Arc<Object>>,
    next: Arc<AtomicU64>,
    /// The bound in bytes (`disk_bytes`).
    capacity: u64,
}

impl DiskTier {
    /// A tier of at most `capacity` bytes in `dir/objects` (emptied).
    pub fn new(dir: &Path, capacity: u64) -> std::io::Result<Self> {
        let dir = dir.join("objects");
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::create_dir_all(&dir)?;
        let cache = Cache::builder()
            .max_capacity(capacity.div_ceil(UNIT).max(1))
            .weigher(|_k: &String, o: &Arc<Object>| {
                u32::try_from(o.meta.len.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX)
            })
            .eviction_policy(EvictionPolicy::lru())
            // moka frees evicted values lazily (epoch-based), so the file
            // is deleted here, when the index lets go, not on drop.
            .eviction_listener(|_k, o: Arc<Object>, _cause| {
                if let Data::Disk(f) = &o.data {
                    f.evict();
                }
            })
            .build();
        Ok(Self {
            dir,
            cache,
            next: Arc::new(AtomicU64::new(0)),
            capacity,
        })
    }

    /// A fresh file name to write a fetched object to, as a [`DiskFile`]
    /// so that an abandoned download is deleted too.
    pub fn new_file(&self) -> Arc<DiskFile> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Arc::new(DiskFile {
            path: self.dir.join(format!("{n:016x}.obj")),
            state: Mutex::default(),
        })
    }

    /// The object under `key`, if held.
    pub fn get(&self, key: &str) -> Option<Arc<Object>> {
        self.cache.get(key)
    }

    /// Holds `object` (with [`Data::Disk`]) under `key`, replacing any other,
    /// and evicts down to the capacity at once.
    pub fn insert(&self, key: &str, object: Arc<Object>) {
        debug_assert!(matches!(object.data, Data::Disk(_)));
        self.cache.insert(key.to_owned(), object);
        self.cache.run_pending_tasks();
    }

    /// Forgets `key` (its file goes when the last reader is done).
    pub fn remove(&self, key: &str) {
        self.cache.invalidate(key);
        self.cache.run_pending_tasks();
    }

    /// Bytes held (rounded up to KiB per object), after pending evictions.
    pub fn bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size() * UNIT
    }

    /// The bound in bytes: no larger object is written to the tier.
    pub fn bound(&self) -> u64 {
        self.capacity
    }

    /// The directory files are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_object_len;

    fn dir_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    }

    #[test]
    fn files_are_deleted_on_eviction_and_the_bound_holds() {
        let root = std::env::temp_dir().join(format!("fleetcast-disk-tier-{}", std::process::id()));
        let tier = DiskTier::new(&root, 100 * 1024).unwrap();
        for i in 0..10 {
            let file = tier.new_file();
            std::fs::write(file.path(), vec![7u8; 30 * 1024]).unwrap();
            tier.insert(
                &format!("/f{i}"),
                test_object_len(Data::Disk(file), 30 * 1024),
            );
        }
        assert!(tier.bytes() <= 100 * 1024);
        assert!(
            dir_bytes(tier.dir()) <= 100 * 1024,
            "{}",
            dir_bytes(tier.dir())
        );
        assert!(tier.get("/f9").is_some());
        assert!(tier.get("/f0").is_none());
        // A pinned reader keeps an evicted file until it lets go; once
        // deleted, nobody can pin it.
        let held = tier.get("/f9").unwrap();
        let Data::Disk(f) = &held.data else {
            unreachable!()
        };
        let pin = f.pin().unwrap();
        tier.remove("/f9");
        assert!(f.path().exists());
        let second = f.pin().unwrap();
        drop(pin);
        assert!(f.path().exists());
        drop(second);
        assert!(!f.path().exists());
        assert!(f.pin().is_none());
        drop(held);
        // A new tier on the same directory starts empty.
        drop(tier);
        let again = DiskTier::new(&root, 1024).unwrap();
        assert_eq!(dir_bytes(again.dir()), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
