//! What the edge cache keeps and for how long. Pure: paths, headers and
//! durations in, decisions out.
//!
//! - Live playlists (`.m3u8`) change with every segment: kept for a short
//!   TTL (`edge.cache.playlist_ttl_ms`), then fetched again.
//! - HLS segments (`.ts`, `.m4s`, `.aac`) never change once written (their
//!   names carry the sequence number): kept until evicted.
//! - Everything else (VOD files, recordings) may be replaced on the origin:
//!   served for `edge.cache.revalidate_secs`, then revalidated with
//!   `If-None-Match` (a 304 keeps the cached bytes).
//! - Nothing the upstream marks `no-store` or `private` is kept.

use std::time::Duration;

/// How an object ages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A live playlist: short TTL, kept in memory only.
    Playlist,
    /// An immutable media segment.
    Segment,
    /// A file that may change upstream: revalidated by entity tag.
    File,
}

impl Class {
    /// The class of a request path by its extension.
    pub fn of(path: &str) -> Self {
        let name = path.rsplit('/').next().unwrap_or_default();
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "m3u8" => Self::Playlist,
            "ts" | "m4s" | "aac" => Self::Segment,
            _ => Self::File,
        }
    }

    /// Metric/log label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Playlist => "playlist",
            Self::Segment => "segment",
            Self::File => "file",
        }
    }
}

/// Freshness settings (from `edge.cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// How long a playlist is served before it is fetched again.
    pub playlist_ttl: Duration,
    /// How long a file is served before it is revalidated.
    pub revalidate_after: Duration,
}

/// What to do with a cached object on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Serve it.
    Serve,
    /// Ask the upstream whether it changed (`If-None-Match`), then serve.
    Revalidate,
    /// Fetch it again (no validator to ask with).
    Refetch,
}

/// The decision for an object of `class` last validated `age` ago.
pub fn action(class: Class, age: Duration, has_etag: bool, f: Freshness) -> Action {
    let ttl = match class {
        Class::Segment => return Action::Serve,
        Class::Playlist => f.playlist_ttl,
        Class::File => f.revalidate_after,
    };
    if age < ttl {
        Action::Serve
    } else if has_etag && class == Class::File {
        Action::Revalidate
    } else {
        Action::Refetch
    }
}

/// True when an upstream answer with this `Cache-Control` may be stored.
pub fn storable(cache_control: Option<&str>) -> bool {
    !cache_control.is_some_and(|cc| {
        cc.split(',').any(|d| {
            let d = d.trim();
            d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("private")
        })
    })
}

/// True when an object of `len` bytes also goes to the memory tier:
/// playlists always (they are small and change too often for disk), other
/// objects when they take at most an eighth of the tier (so one large file
/// does not flush every segment) and at most 8 MiB.
pub fn in_memory(class: Class, len: u64, memory_bytes: u64) -> bool {
    class == Class::Playlist || len <= (memory_bytes / 8).min(8 * 1024 * 1024)
}

/// True when an object is written to the disk tier: everything but
/// playlists, unless there is no disk tier (`disk_bytes: 0`).
pub fn on_disk(class: Class, disk_bytes: u64) -> bool {
    class != Class::Playlist && disk_bytes > 0
}

/// `Cache-Control` the edge sends for an object of `class` when the
/// upstream sent none.
pub fn default_cache_control(class: Class) -> &'static str {
    match class {
        Class::Playlist => "no-cache",
        Class::Segment => "public, max-age=86400, immutable",
        Class::File => "public, max-age=300",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Freshness = Freshness {
        playlist_ttl: Duration::from_secs(1),
        revalidate_after: Duration::from_secs(30),
    };

    #[test]
    fn classes_by_extension() {
        assert_eq!(Class::of("/live/cam/index.m3u8"), Class::Playlist);
        assert_eq!(Class::of("/live/cam/INDEX.M3U8"), Class::Playlist);
        assert_eq!(Class::of("/live/cam/seg-12.ts"), Class::Segment);
        assert_eq!(Class::of("/live/cam/seg-12.m4s"), Class::Segment);
        assert_eq!(Class::of("/vod/talk.mp4"), Class::File);
        assert_eq!(Class::of("/vod/recordings/live/a.flv"), Class::File);
        assert_eq!(Class::of("/vod/noext"), Class::File);
        assert_eq!(Class::of("/vod/dir.ts/file"), Class::File);
    }

    #[test]
    fn segments_never_expire() {
        let year = Duration::from_hours(24 * 365);
        assert_eq!(action(Class::Segment, year, false, F), Action::Serve);
    }

    #[test]
    fn playlists_refetch_after_ttl() {
        let ms = Duration::from_millis;
        assert_eq!(action(Class::Playlist, ms(999), true, F), Action::Serve);
        assert_eq!(action(Class::Playlist, ms(1000), true, F), Action::Refetch);
        assert_eq!(action(Class::Playlist, ms(1000), false, F), Action::Refetch);
    }

    #[test]
    fn files_revalidate_by_etag() {
        let s = Duration::from_secs;
        assert_eq!(action(Class::File, s(29), true, F), Action::Serve);
        assert_eq!(action(Class::File, s(30), true, F), Action::Revalidate);
        assert_eq!(action(Class::File, s(30), false, F), Action::Refetch);
        let always = Freshness {
            revalidate_after: Duration::ZERO,
            ..F
        };
        assert_eq!(
            action(Class::File, Duration::ZERO, true, always),
            Action::Revalidate
        );
    }

    #[test]
    fn no_store_and_private_are_not_kept() {
        assert!(storable(None));
        assert!(storable(Some("public, max-age=300")));
        assert!(!storable(Some("no-store")));
        assert!(!storable(Some("max-age=0, No-Store")));
        assert!(!storable(Some("private")));
    }

    #[test]
    fn tiers_by_size_and_class() {
        let mem = 64 * 1024 * 1024;
        assert!(in_memory(Class::Segment, 1024 * 1024, mem));
        assert!(in_memory(Class::File, 8 * 1024 * 1024, mem));
        assert!(!in_memory(Class::File, 8 * 1024 * 1024 + 1, mem));
        assert!(!in_memory(Class::File, 1024 * 1024, 4 * 1024 * 1024));
        assert!(in_memory(Class::Playlist, 10 * 1024 * 1024, 1024));
        assert!(on_disk(Class::File, 1) && on_disk(Class::Segment, 1));
        assert!(!on_disk(Class::Playlist, 1));
        // disk_bytes 0: no disk tier at all.
        assert!(!on_disk(Class::File, 0) && !on_disk(Class::Segment, 0));
    }
}
