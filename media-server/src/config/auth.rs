//! Who may publish and who may play: tokens, keys, signed URLs and
//! authorization webhooks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Who may publish and who may play (see `docs/security.md`). Every
/// field is optional; without any, anyone may publish to a configured app
/// and play anything.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// A file holding the publish token(s), one per line (surrounding
    /// whitespace ignored; read again when it changes). When set,
    /// publishers must add `?token=TOKEN` to the stream name
    /// (`rtmp://HOST/live/NAME?token=TOKEN`, or the OBS stream key
    /// `NAME?token=TOKEN`); others get `NetStream.Publish.BadAuth`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_token_file: Option<PathBuf>,
    /// A directory of publish keys (a mounted Secret): file `APP.NAME`
    /// holds the keys of stream `APP/NAME`, file `APP` those of every
    /// stream of `APP`, one per line. Publishers add `?key=KEY` to the
    /// stream name. Read again when the files change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_keys_dir: Option<PathBuf>,
    /// An HTTP callback asked about every publish (2xx allows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_webhook: Option<WebhookConfig>,
    /// A second publisher of a live stream replaces the first (whose
    /// connection is closed) instead of being refused.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_takeover: bool,
    /// HMAC-SHA256 secret(s) for signed playback URLs, one per line: the
    /// first signs (edges' upstream requests, `sign-url`), every line verifies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub play_signing_secret_file: Option<PathBuf>,
    /// Signed playback URLs are bound to the viewer's IP address.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub play_signing_bind_addr: bool,
    /// An HTTP callback asked about every play (HLS: once per session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub play_webhook: Option<WebhookConfig>,
}

/// An authorization webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://HOST:PORT/PATH`, sent a JSON `POST`.
    pub url: String,
    /// Milliseconds to wait for the whole answer; none in time denies.
    pub timeout_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_ms: 2000,
        }
    }
}

pub(super) fn validate_auth(auth: &AuthConfig, bad: &mut impl FnMut(&str, String)) {
    for (field, hook) in [
        ("auth.publish_webhook", &auth.publish_webhook),
        ("auth.play_webhook", &auth.play_webhook),
    ] {
        if let Some(hook) = hook {
            validate_webhook(field, hook, bad);
        }
    }
}

fn validate_webhook(field: &str, hook: &WebhookConfig, bad: &mut impl FnMut(&str, String)) {
    if let Err(why) = crate::auth::webhook::Webhook::new(hook) {
        bad(&format!("{field}.url"), why);
    }
    if !(1..=60_000).contains(&hook.timeout_ms) {
        bad(
            &format!("{field}.timeout_ms"),
            format!("{} is outside 1..=60000", hook.timeout_ms),
        );
    }
}
