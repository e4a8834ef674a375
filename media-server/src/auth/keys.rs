//! Publish keys from a directory (a mounted Secret): file `APP.NAME` holds
//! the keys of stream `APP/NAME`, file `APP` those of every stream of `APP`;
//! one key per line, so a key is rotated by adding the new line, moving
//! publishers over, and removing the old one. Names starting with `.`
//! (Kubernetes' `..data` and its timestamped directories) are skipped.

use std::collections::HashMap;
use std::path::Path;

use super::reason::Reason;
use super::reload::{lines, read_small};

/// The keys of every file of a key directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    files: HashMap<String, Vec<String>>,
}

impl KeySet {
    /// From (file name, content) pairs.
    pub fn from_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            files: files
                .into_iter()
                .filter(|(name, _)| !name.starts_with('.'))
                .map(|(name, text)| (name.to_owned(), lines(text)))
                .collect(),
        }
    }

    /// Reads every regular file (symlinks followed) of `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self, String> {
        let mut files = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            // `metadata` follows the Secret's symlinks into `..data/`.
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                continue;
            }
            let text = read_small(&path).map_err(|e| format!("{name}: {e}"))?;
            files.insert(name, lines(&text));
        }
        Ok(Self { files })
    }

    /// Number of files read.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when the directory had no key files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// May `key` publish `app/name`?
    /// Checks `app/name` against the key given in any of `given`'s forms.
    pub fn check(&self, app: &str, name: &str, given: &[String]) -> Result<(), Reason> {
        let stream_file = format!("{app}.{name}");
        let mut keys = [stream_file.as_str(), app]
            .into_iter()
            .filter_map(|f| self.files.get(f))
            .flatten()
            .peekable();
        if keys.peek().is_none() {
            return Err(Reason::NoKey);
        }
        if given.iter().all(String::is_empty) {
            return Err(Reason::BadKey);
        }
        // Compare every key to the end so timing tells nothing of which matched.
        let mut found = false;
        for k in keys {
            for g in given.iter().filter(|g| !g.is_empty()) {
                found |= constant_time_eq(k.as_bytes(), g.as_bytes());
            }
        }
        if found { Ok(()) } else { Err(Reason::BadKey) }
    }
}

/// Equality whose time depends on the lengths only, not on where bytes
/// differ (`subtle`, as the admin token's check).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_and_app_keys() {
        let set = KeySet::from_files([
            ("live.cam1", "k1\nk1-next\n"),
            ("live", "app-key"),
            ("..data", "ignored"),
            ("other.x", ""),
        ]);
        assert_eq!(set.check("live", "cam1", &["k1".to_owned()]), Ok(()));
        assert_eq!(set.check("live", "cam1", &["k1-next".to_owned()]), Ok(()));
        assert_eq!(set.check("live", "cam1", &["app-key".to_owned()]), Ok(()));
        assert_eq!(set.check("live", "cam2", &["app-key".to_owned()]), Ok(()));
        assert_eq!(
            set.check("live", "cam2", &["k1".to_owned()]),
            Err(Reason::BadKey)
        );
        assert_eq!(set.check("live", "cam1", &[]), Err(Reason::BadKey));
        assert_eq!(
            set.check("live", "cam1", &[String::new()]),
            Err(Reason::BadKey)
        );
        assert_eq!(
            set.check("other", "y", &["k1".to_owned()]),
            Err(Reason::NoKey)
        );
        // An empty key file configures no key: nobody publishes there.
        assert_eq!(
            set.check("other", "x", &[String::new()]),
            Err(Reason::NoKey)
        );
        assert_eq!(
            set.check("..data", "", &["ignored".to_owned()]),
            Err(Reason::NoKey)
        );
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn loads_a_secret_mount_through_symlinks() {
        let dir = std::env::temp_dir().join(format!("fc-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let v1 = dir.join("..2026_01");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(v1.join("live.cam"), "one\n").unwrap();
        std::os::unix::fs::symlink("..2026_01", dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/live.cam", dir.join("live.cam")).unwrap();
        let set = KeySet::load_dir(&dir).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.check("live", "cam", &["one".to_owned()]), Ok(()));
        // The kubelet's swap: a new timestamped directory, `..data` renamed over.
        let v2 = dir.join("..2026_02");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("live.cam"), "two\n").unwrap();
        std::os::unix::fs::symlink("..2026_02", dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        let set = KeySet::load_dir(&dir).unwrap();
        assert_eq!(set.check("live", "cam", &["two".to_owned()]), Ok(()));
        assert_eq!(
            set.check("live", "cam", &["one".to_owned()]),
            Err(Reason::BadKey)
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(KeySet::load_dir(&dir).is_err());
    }
}
