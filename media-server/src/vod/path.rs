//! Turning a request path into a file that is certainly inside a VOD root.
//!
//! Two checks, either of which alone would stop a traversal: the decoded
//! path must consist of plain names (no `..`, `.`, empty, hidden or absolute
//! parts, no backslashes or NULs, even when percent-encoded), and the
//! canonical path of the file (symlinks resolved) must still lie under the
//! canonical root.

use std::path::{Path, PathBuf};

use super::VodError;

/// Longest accepted request path.
const MAX_PATH_LEN: usize = 1024;
/// The first path segment that selects the recordings root.
pub const RECORDINGS_PREFIX: &str = "recordings";

/// The directories VOD files come from.
#[derive(Debug, Clone)]
pub struct VodRoots {
    /// `data_dir/vod`.
    pub vod: PathBuf,
    /// `data_dir/recordings`, served under `recordings/`.
    pub recordings: PathBuf,
}

impl VodRoots {
    /// The roots under a data directory.
    pub fn under(data_dir: &Path) -> Self {
        Self {
            vod: data_dir.join("vod"),
            recordings: data_dir.join("recordings"),
        }
    }
}

/// Percent-decodes a URL path; `None` for bad escapes or non-UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Checks a decoded relative path and splits it into plain names.
pub fn plain_components(decoded: &str) -> Result<Vec<&str>, VodError> {
    if decoded.is_empty() || decoded.len() > MAX_PATH_LEN || decoded.contains(['\\', '\0']) {
        return Err(VodError::BadPath);
    }
    let parts: Vec<&str> = decoded.split('/').collect();
    for p in &parts {
        // Covers "", ".", "..", hidden files and in-progress `.part` names.
        if p.is_empty()
            || p.starts_with('.')
            || p.to_ascii_lowercase().ends_with(".part")
            || p.contains(':')
        {
            return Err(VodError::BadPath);
        }
    }
    Ok(parts)
}

/// Resolves `rel` (the part of the URL path after `/vod/`, still
/// percent-encoded) to a regular file inside one of the roots.
pub async fn resolve(roots: &VodRoots, rel: &str) -> Result<PathBuf, VodError> {
    let decoded = percent_decode(rel).ok_or(VodError::BadPath)?;
    let parts = plain_components(&decoded)?;
    let (root, parts) = match parts.split_first() {
        Some((first, rest)) if *first == RECORDINGS_PREFIX && !rest.is_empty() => {
            (&roots.recordings, rest)
        }
        _ => (&roots.vod, &parts[..]),
    };
    let root = tokio::fs::canonicalize(root)
        .await
        .map_err(|_| VodError::NotFound)?;
    let mut path = root.clone();
    path.extend(parts);
    let resolved = tokio::fs::canonicalize(&path)
        .await
        .map_err(|_| VodError::NotFound)?;
    if !resolved.starts_with(&root) {
        return Err(VodError::NotFound);
    }
    let meta = tokio::fs::metadata(&resolved)
        .await
        .map_err(|_| VodError::NotFound)?;
    if !meta.is_file() {
        return Err(VodError::NotFound);
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%2e%2E").as_deref(), Some(".."));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn only_plain_names_pass() {
        assert_eq!(plain_components("a/b.mp4").unwrap(), ["a", "b.mp4"]);
        for bad in [
            "",
            "..",
            "../x",
            "a/../b",
            "/etc/passwd",
            "a//b",
            "./a",
            ".hidden",
            "a\\..\\b",
            "a\0",
            "x.flv.part",
            "C:x",
            "a/",
        ] {
            assert!(plain_components(bad).is_err(), "{bad:?}");
        }
    }
}
