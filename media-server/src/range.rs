//! HTTP byte ranges and conditional requests for file serving (RFC 9110
//! sections 13 and 14): `Range`, `If-Range`, `If-None-Match`, the entity tag
//! and the `Content-Range` value.
//!
//! Only single ranges are served as 206. A request with several ranges gets
//! the whole file (200), which RFC 9110 allows and every player handles;
//! multipart/byteranges is not worth its complexity for media files.
//! Header values longer than [`MAX_HEADER_LEN`] are ignored, as is any
//! `Range` that does not parse (the RFC says a server may ignore it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest `Range` / `If-Range` / `If-None-Match` value considered.
pub const MAX_HEADER_LEN: usize = 1024;

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send everything with 200.
    Full,
    /// Send bytes `start..=end` with 206.
    Partial {
        /// First byte offset.
        start: u64,
        /// Last byte offset, inclusive.
        end: u64,
    },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

impl RangeRequest {
    /// The `Content-Range` header value for this answer, if it needs one.
    pub fn content_range(self, len: u64) -> Option<String> {
        match self {
            RangeRequest::Full => None,
            RangeRequest::Partial { start, end } => Some(format!("bytes {start}-{end}/{len}")),
            RangeRequest::Unsatisfiable => Some(format!("bytes */{len}")),
        }
    }
}

/// Parses a `Range` header value against a representation of `len` bytes.
pub fn parse_range(value: &str, len: u64) -> RangeRequest {
    if value.len() > MAX_HEADER_LEN {
        return RangeRequest::Full;
    }
    let Some(spec) = strip_prefix_ignore_case(value.trim(), "bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        let Some(n) = digits(last) else {
            return RangeRequest::Full;
        };
        if n == 0 || len == 0 {
            return RangeRequest::Unsatisfiable;
        }
        return RangeRequest::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        };
    }
    let Some(start) = digits(first) else {
        return RangeRequest::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match digits(last) {
            Some(end) if end >= start => Some(end),
            _ => return RangeRequest::Full,
        }
    };
    if start >= len {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial {
        start,
        end: end.map_or(len - 1, |e| e.min(len - 1)),
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A non-empty run of ASCII digits that fits a u64.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The strong entity tag of a file: its length and modification time,
/// the same on every server holding the same file.
pub fn etag(len: u64, modified: SystemTime) -> String {
    let mtime = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("\"{len:x}-{:x}\"", mtime.as_secs())
}

/// `Last-Modified` value (IMF-fixdate).
pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// Whole seconds, as HTTP dates carry.
fn truncate_secs(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// True when an `If-Range` value still matches the representation, so the
/// range applies; false means send the whole file. An entity tag must match
/// strongly (weak tags never do); a date must equal `Last-Modified`.
pub fn if_range_matches(value: &str, etag: &str, modified: SystemTime) -> bool {
    let value = value.trim();
    if value.len() > MAX_HEADER_LEN {
        return false;
    }
    if value.starts_with('"') {
        return value == etag;
    }
    if value.starts_with("W/") {
        return false;
    }
    httpdate::parse_http_date(value).is_ok_and(|date| date == truncate_secs(modified))
}

/// True when an `If-None-Match` value matches `etag` (weak comparison), so
/// the answer is 304 Not Modified.
pub fn if_none_match(value: &str, etag: &str) -> bool {
    if value.len() > MAX_HEADER_LEN {
        return false;
    }
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = bare(etag);
    value.split(',').any(|t| t.trim() == "*" || bare(t) == ours)
}

/// True when an `If-Modified-Since` date is at or after `modified`.
pub fn not_modified_since(value: &str, modified: SystemTime) -> bool {
    value.len() <= MAX_HEADER_LEN
        && httpdate::parse_http_date(value.trim()).is_ok_and(|date| truncate_secs(modified) <= date)
}

/// Fuzz entry (`fuzz/fuzz_targets/http_range.rs`, corpus replayed by
/// `tests/fuzz_corpus.rs`): the first 8 bytes are the representation length,
/// the rest is split on newlines into `Range`, `If-Range`, `If-None-Match`
/// and a VOD request path. Checks that every answer is inside the file.
pub fn fuzz_headers(data: &[u8]) {
    let (len, rest) = data.split_at(data.len().min(8));
    let mut n = [0u8; 8];
    n[..len.len()].copy_from_slice(len);
    let len = u64::from_be_bytes(n);
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\n');
    let (range, if_range, inm, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let answer = parse_range(range, len);
    if let RangeRequest::Partial { start, end } = answer {
        assert!(
            start <= end && end < len,
            "{range:?} of {len} gave {start}-{end}"
        );
    }
    let _ = answer.content_range(len);
    let modified = UNIX_EPOCH + Duration::from_secs(len % (1 << 34));
    let tag = etag(len, modified);
    let _ = if_range_matches(if_range, &tag, modified);
    let _ = if_none_match(inm, &tag);
    let _ = not_modified_since(if_range, modified);
    if let Some(decoded) = crate::vod::path::percent_decode(path)
        && let Ok(parts) = crate::vod::path::plain_components(&decoded)
    {
        for p in parts {
            assert!(
                !p.is_empty() && p != ".." && !p.contains(['/', '\\', '\0']),
                "{path:?} passed as {p:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Partial { start, end }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), partial(0, 99));
        assert_eq!(parse_range("bytes=100-", 1000), partial(100, 999));
        assert_eq!(parse_range("bytes=900-5000", 1000), partial(900, 999));
        assert_eq!(parse_range("bytes=999-999", 1000), partial(999, 999));
        assert_eq!(parse_range(" Bytes=5-9 ", 1000), partial(5, 9));
    }

    #[test]
    fn suffix_ranges() {
        assert_eq!(parse_range("bytes=-100", 1000), partial(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), partial(0, 999));
        assert_eq!(parse_range("bytes=-0", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(parse_range("bytes=-10", 0), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(
            parse_range("bytes=1000-", 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range("bytes=2000-3000", 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=0-", 0), RangeRequest::Unsatisfiable);
        assert_eq!(
            RangeRequest::Unsatisfiable.content_range(1000).unwrap(),
            "bytes */1000"
        );
        assert_eq!(partial(0, 9).content_range(1000).unwrap(), "bytes 0-9/1000");
    }

    #[test]
    fn ignored_ranges() {
        for v in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=+1-2",
            "items=0-1",
            "bytes=0-1,5-9",
            "bytes=99999999999999999999999-",
            "bytes=1--2",
        ] {
            assert_eq!(parse_range(v, 1000), RangeRequest::Full, "{v:?}");
        }
        let long = format!("bytes=0-1{}", " ".repeat(MAX_HEADER_LEN));
        assert_eq!(parse_range(&long, 1000), RangeRequest::Full);
    }

    #[test]
    fn if_range_by_etag_and_date() {
        let modified = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let tag = etag(1000, modified);
        assert_eq!(tag, "\"3e8-6553f100\"");
        assert!(if_range_matches(&tag, &tag, modified));
        assert!(!if_range_matches("\"other\"", &tag, modified));
        assert!(!if_range_matches(&format!("W/{tag}"), &tag, modified));
        let date = http_date(modified);
        assert_eq!(date, "Tue, 14 Nov 2023 22:13:20 GMT");
        assert!(if_range_matches(&date, &tag, modified));
        assert!(!if_range_matches(
            "Tue, 14 Nov 2023 22:13:19 GMT",
            &tag,
            modified
        ));
        assert!(!if_range_matches("garbage", &tag, modified));
    }

    #[test]
    fn if_none_match_weak_comparison() {
        let tag = "\"3e8-1\"";
        assert!(if_none_match("\"3e8-1\"", tag));
        assert!(if_none_match("W/\"3e8-1\"", tag));
        assert!(if_none_match("\"a\", \"3e8-1\"", tag));
        assert!(if_none_match("*", tag));
        assert!(!if_none_match("\"a\"", tag));
    }

    #[test]
    fn if_modified_since() {
        let modified = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(not_modified_since(
            "Tue, 14 Nov 2023 22:13:20 GMT",
            modified
        ));
        assert!(!not_modified_since(
            "Tue, 14 Nov 2023 22:13:19 GMT",
            modified
        ));
        assert!(!not_modified_since("nonsense", modified));
    }

    /// A bounded pseudo-random sweep of the fuzz entry on top of the corpus.
    #[test]
    fn fuzz_entry_survives_random_input() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"bytes=-0123456789,; \n\"W/%2e./*abcGMT";
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = usize::try_from(x % 64).unwrap();
            let mut data = (x % 5000).to_be_bytes().to_vec();
            let mut y = x;
            for _ in 0..n {
                y = y.rotate_left(5).wrapping_mul(0x2545_f491_4f6c_dd1d);
                data.push(alphabet[usize::try_from(y % alphabet.len() as u64).unwrap()]);
            }
            fuzz_headers(&data);
        }
    }

    /// Every parse result is inside the representation.
    #[test]
    fn results_are_in_bounds() {
        let values = [
            "bytes=0-0",
            "bytes=-1",
            "bytes=5-",
            "bytes=3-4",
            "bytes=-7",
            "bytes=0-18446744073709551615",
        ];
        for len in 0..10u64 {
            for v in values {
                if let RangeRequest::Partial { start, end } = parse_range(v, len) {
                    assert!(start <= end && end < len, "{v} {len}");
                }
            }
        }
    }
}
