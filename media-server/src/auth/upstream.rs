//! An edge's own upstream requests (live relay pulls over RTMP, cache
//! fetches over HTTP, from origins or peer edges) carry a token the edge
//! signs with the shared play signing secret, bound to `edge` instead of an
//! address (see [`super::signing`]), so an origin with signing on serves
//! its edges while refusing unsigned viewers.
//!
//! Process-wide because those clients are built deep inside the edge
//! modules, and one process runs one role with one secret file; it is set
//! once the configuration names a secret and never otherwise.

use std::sync::{Arc, OnceLock};

use super::reload::Reloading;
use super::signing::{self, Binding};

/// Lifetime of an upstream token: it is checked when a pull or fetch
/// starts, so it only needs to outlive connection setup and clock skew.
pub const UPSTREAM_TTL_SECS: u64 = 300;

static SECRETS: OnceLock<Arc<Reloading<Vec<String>>>> = OnceLock::new();

/// Signs this process's upstream requests with `secrets` from now on (the first call wins).
pub fn install(secrets: Arc<Reloading<Vec<String>>>) {
    let _ = SECRETS.set(secrets);
}

/// The query for an upstream request of `resource`, when signing is on.
pub fn query(resource: &str) -> Option<String> {
    let secrets = SECRETS.get()?.get();
    let first = secrets.as_ref().as_ref().ok()?.first()?.clone();
    let expires = super::unix_now() + UPSTREAM_TTL_SECS;
    Some(signing::query(
        first.as_bytes(),
        resource,
        expires,
        Binding::Edge,
    ))
}

/// `path` (`/vod/FILE`, `/APP/NAME/...`) with the upstream query appended
/// when signing is on; unchanged otherwise.
pub fn sign_path(path: &str) -> String {
    // Resources are signed decoded, as the verifying side decodes them.
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    match signing::resource_of_path(&decoded).and_then(|r| query(&r)) {
        Some(q) => {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{sep}{q}")
        }
        None => path.to_owned(),
    }
}

/// The `?query` to append to an RTMP pull's stream name, or "".
pub fn rtmp_suffix(app: &str, name: &str) -> String {
    query(&format!("{app}/{name}")).map_or_else(String::new, |q| format!("?{q}"))
}
