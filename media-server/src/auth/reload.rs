//! A value loaded from files and loaded again when asked at most once a
//! second, so key and secret files can change under a running server.
//! Kubernetes updates a mounted Secret by swapping its `..data` symlink:
//! reading the files again through their paths sees the new content;
//! nothing watches inodes. The files are small (keys, secrets), so reading
//! them once a second at most costs nothing worth an inotify watcher.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// How long a loaded value is used before the files are read again.
pub const RECHECK: Duration = Duration::from_secs(1);

/// What a load gives: the value, or why there is none (the caller fails closed).
pub type Loaded<T> = Arc<Result<T, String>>;

/// A value read from `path` by `load`, read again at most every [`RECHECK`].
pub struct Reloading<T> {
    path: PathBuf,
    what: &'static str,
    load: fn(&Path) -> Result<T, String>,
    state: Mutex<Option<(Instant, Loaded<T>)>>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("path", &self.path)
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl<T: PartialEq> Reloading<T> {
    /// Loads `path` now (logging a failure) and keeps it fresh on [`Reloading::get`].
    pub fn new(path: &Path, what: &'static str, load: fn(&Path) -> Result<T, String>) -> Self {
        let this = Self {
            path: path.to_owned(),
            what,
            load,
            state: Mutex::new(None),
        };
        let _ = this.get();
        this
    }

    /// The current value, read again if the last read is older than [`RECHECK`].
    /// File reads are small and rare (once a second at most), so they run
    /// on the caller's thread.
    pub fn get(&self) -> Loaded<T> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some((at, value)) = &*state
            && now.duration_since(*at) < RECHECK
        {
            return Arc::clone(value);
        }
        let fresh = (self.load)(&self.path);
        let changed = state.as_ref().is_none_or(|(_, old)| **old != fresh);
        if changed {
            match &fresh {
                Ok(_) if state.is_some() => {
                    info!(path = %self.path.display(), "{} changed: reloaded", self.what);
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(path = %self.path.display(), error = %e, "{} unavailable: refusing until it can be read", self.what);
                }
            }
        }
        let value = match state.take() {
            Some((_, old)) if !changed => old,
            _ => Arc::new(fresh),
        };
        *state = Some((now, Arc::clone(&value)));
        value
    }
}

/// Non-empty lines of a key or secret file, each trimmed.
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Largest key or secret file read (they hold a few lines).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Reads a small text file, refusing huge ones.
pub fn read_small(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

/// A file of one or more lines (a token file, a secret file): its lines,
/// or an error when it is empty.
pub fn load_lines(path: &Path) -> Result<Vec<String>, String> {
    let l = lines(&read_small(path)?);
    if l.is_empty() {
        return Err("empty".into());
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_trim_and_skip_blanks() {
        assert_eq!(lines(" a \n\n b\r\n"), vec!["a", "b"]);
        assert!(lines("\n \n").is_empty());
    }

    #[test]
    fn reads_again_after_a_second_only() {
        let dir = std::env::temp_dir().join(format!("fc-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "one\n").unwrap();
        let r = Reloading::new(&file, "test secret", load_lines);
        assert_eq!(r.get().as_ref().as_ref().unwrap(), &vec!["one".to_owned()]);
        std::fs::write(&file, "two\n").unwrap();
        // Within the second: the old value.
        assert_eq!(r.get().as_ref().as_ref().unwrap(), &vec!["one".to_owned()]);
        // Pretend the last read was long ago.
        if let Some((at, _)) = r.state.lock().unwrap().as_mut() {
            *at -= RECHECK;
        }
        assert_eq!(r.get().as_ref().as_ref().unwrap(), &vec!["two".to_owned()]);
        std::fs::remove_file(&file).unwrap();
        if let Some((at, _)) = r.state.lock().unwrap().as_mut() {
            *at -= RECHECK;
        }
        assert!(r.get().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
