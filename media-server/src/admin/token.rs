//! The admin Bearer token: who may call a mutating admin endpoint.
//!
//! The token file is read on every check, so a rotated Secret (Kubernetes
//! swaps the mounted file in place) takes effect at once, without a
//! restart; mutating requests are rare, so the read costs nothing that
//! matters. Each non-empty line of the file is an accepted token (rotation:
//! add the new token, move the clients, remove the old one). Tokens are
//! compared as SHA-256 digests in constant time, so neither content nor
//! length leaks through timing.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The outcome of checking a request's `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The token matches.
    Allowed,
    /// No token file is configured: mutating endpoints are off (403).
    NotConfigured,
    /// The token file could not be read or holds no token: refuse (fail
    /// closed, 403) and say so.
    Unavailable(String),
    /// No `Authorization: Bearer` header (401).
    Missing,
    /// A Bearer token that is not the configured one (401).
    Wrong,
}

/// Checks `authorization` (the header's value) against the tokens of
/// `token_file`, read now.
pub fn check(token_file: Option<&Path>, authorization: Option<&[u8]>) -> Verdict {
    let Some(path) = token_file else {
        return Verdict::NotConfigured;
    };
    let tokens = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return Verdict::Unavailable(format!("admin token file unreadable: {e}")),
    };
    verify(&tokens, authorization)
}

/// The pure part of [`check`]: `tokens` is the token file's text.
pub fn verify(tokens: &str, authorization: Option<&[u8]>) -> Verdict {
    let accepted: Vec<&str> = tokens
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if accepted.is_empty() {
        return Verdict::Unavailable("admin token file is empty".into());
    }
    let Some(presented) = authorization.and_then(bearer) else {
        return Verdict::Missing;
    };
    let presented = Sha256::digest(presented);
    // Every line is compared, matched or not, so the time does not tell which.
    let mut ok = subtle::Choice::from(0);
    for t in accepted {
        ok |= Sha256::digest(t.as_bytes()).ct_eq(&presented);
    }
    if bool::from(ok) {
        Verdict::Allowed
    } else {
        Verdict::Wrong
    }
}

/// The token of an `Authorization: Bearer TOKEN` value (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_checked_against_every_line() {
        let file = "old-token\n\n  new-token  \n";
        assert_eq!(verify(file, Some(b"Bearer new-token")), Verdict::Allowed);
        assert_eq!(verify(file, Some(b"bearer old-token")), Verdict::Allowed);
        assert_eq!(verify(file, Some(b"Bearer new-tok")), Verdict::Wrong);
        assert_eq!(verify(file, Some(b"Bearer ")), Verdict::Missing);
        assert_eq!(verify(file, Some(b"Basic bmV3LXRva2Vu")), Verdict::Missing);
        assert_eq!(verify(file, Some(b"new-token")), Verdict::Missing);
        assert_eq!(verify(file, None), Verdict::Missing);
    }

    #[test]
    fn no_file_empty_file_and_unreadable_file_refuse() {
        assert_eq!(check(None, Some(b"Bearer x")), Verdict::NotConfigured);
        assert!(matches!(
            verify(" \n", Some(b"Bearer x")),
            Verdict::Unavailable(_)
        ));
        assert!(matches!(
            check(
                Some(Path::new("/nonexistent/admin/token")),
                Some(b"Bearer x")
            ),
            Verdict::Unavailable(_)
        ));
    }
}
