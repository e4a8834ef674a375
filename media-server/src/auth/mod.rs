//! Who may publish and who may play.
//!
//! Publish: a token file (`?token=`), a key directory (`?key=`, per stream
//! and per app, rotated in place), a webhook; every one configured must
//! allow, in that order (the webhook is asked last, only for publishers
//! that passed the files). A second publisher of a live stream is refused
//! unless `allow_takeover`: then the first is disconnected (the hub's
//! `disconnect_publisher`) and the second takes its place.
//!
//! Play: signed URLs (`?expires=&token=`, see [`signing`]) and/or a webhook,
//! checked for RTMP play, HTTP-FLV, HLS playlists and segments and VOD, on
//! origins and edges. Edges sign their own upstream requests (see
//! [`upstream`]).
//!
//! The pure parts (signatures, key sets, webhook answers, decision cache)
//! are in their modules; this one holds the configured state.

pub mod http;
pub mod keys;
pub mod query;
pub mod reason;
pub mod reload;
pub mod signing;
pub mod upstream;
pub mod webhook;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use query::Query;
pub use reason::{Reason, Refusal, RefusalCounts};

use crate::config::Config;
use keys::{KeySet, constant_time_eq};
use reload::{Reloading, load_lines};
use webhook::{DecisionCache, HookRequest, ServerInfo, Webhook};

/// How long a play webhook's allowance is reused for the same client,
/// stream and query (an HLS session's playlist reloads and segments).
pub const PLAY_ALLOW_TTL: Duration = Duration::from_secs(30);
/// How long a play webhook's denial is reused.
pub const PLAY_DENY_TTL: Duration = Duration::from_secs(5);
/// Most cached play decisions.
const PLAY_CACHE_MAX: usize = 10_000;

fn webhook_of(config: Option<&crate::config::WebhookConfig>) -> Option<Result<Webhook, String>> {
    config.map(Webhook::new)
}

async fn ask(hook: &Result<Webhook, String>, request: &HookRequest<'_>) -> Result<(), Refusal> {
    match hook {
        Ok(h) => h.ask(request).await,
        Err(e) => Err(Refusal {
            reason: Reason::WebhookUnreachable,
            description: format!("authorization webhook misconfigured: {e}"),
        }),
    }
}

/// Publish authorization.
#[derive(Debug)]
pub struct PublishAuth {
    token: Option<Reloading<Vec<String>>>,
    keys: Option<Reloading<KeySet>>,
    webhook: Option<Result<Webhook, String>>,
    allow_takeover: bool,
    server: ServerInfo,
}

impl PublishAuth {
    /// From `config.auth`; files are read now and again when they change.
    pub fn from_config(config: &Config) -> Self {
        let a = &config.auth;
        Self {
            token: a
                .publish_token_file
                .as_deref()
                .map(|p| Reloading::new(p, "publish token file", load_lines)),
            keys: a
                .publish_keys_dir
                .as_deref()
                .map(|p| Reloading::new(p, "publish keys directory", KeySet::load_dir)),
            webhook: webhook_of(a.publish_webhook.as_ref()),
            allow_takeover: a.allow_takeover,
            server: ServerInfo::current(config.role),
        }
    }

    /// May a second publisher replace the first?
    pub fn allow_takeover(&self) -> bool {
        self.allow_takeover
    }

    /// Checks a publish of `app/name` whose stream name carried `query`.
    pub async fn check(
        &self,
        app: &str,
        name: &str,
        query: Option<&str>,
        client: IpAddr,
    ) -> Result<(), Refusal> {
        let q = Query::parse(query);
        if let Some(token) = &self.token {
            let loaded = token.get();
            let Ok(tokens) = loaded.as_ref() else {
                return Err(Reason::Unavailable.into());
            };
            let given = q.secret_forms("token");
            let mut found = false;
            for t in tokens {
                for g in &given {
                    found |= constant_time_eq(t.as_bytes(), g.as_bytes());
                }
            }
            if !found {
                return Err(Refusal {
                    reason: Reason::BadKey,
                    description: "bad or missing token".into(),
                });
            }
        }
        if let Some(keys) = &self.keys {
            let loaded = keys.get();
            let Ok(set) = loaded.as_ref() else {
                return Err(Reason::Unavailable.into());
            };
            set.check(app, name, &q.secret_forms("key"))?;
        }
        if let Some(hook) = &self.webhook {
            let request = HookRequest {
                action: "publish",
                app,
                name,
                query: q.pairs(),
                client_addr: signing::canonical_ip(client).to_string(),
                protocol: "rtmp",
                server: self.server.clone(),
            };
            ask(hook, &request).await?;
        }
        Ok(())
    }
}

/// What kind of playback asks (for the webhook and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayKind {
    /// RTMP play (live or VOD).
    Rtmp,
    /// HTTP-FLV.
    Flv,
    /// HLS playlist or segment.
    Hls,
    /// A VOD file over HTTP.
    Vod,
}

impl PlayKind {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayKind::Rtmp => "rtmp",
            PlayKind::Flv => "flv",
            PlayKind::Hls => "hls",
            PlayKind::Vod => "vod",
        }
    }
}

/// Play authorization.
#[derive(Debug)]
pub struct PlayAuth {
    secrets: Option<Arc<Reloading<Vec<String>>>>,
    bind_addr: bool,
    webhook: Option<Result<Webhook, String>>,
    decisions: Mutex<DecisionCache>,
    server: ServerInfo,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl PlayAuth {
    /// From `config.auth`.
    pub fn from_config(config: &Config) -> Self {
        let a = &config.auth;
        let secrets = a
            .play_signing_secret_file
            .as_deref()
            .map(|p| Arc::new(Reloading::new(p, "play signing secret file", load_lines)));
        Self {
            secrets,
            bind_addr: a.play_signing_bind_addr,
            webhook: webhook_of(a.play_webhook.as_ref()),
            decisions: Mutex::new(DecisionCache::new(
                PLAY_ALLOW_TTL,
                PLAY_DENY_TTL,
                PLAY_CACHE_MAX,
            )),
            server: ServerInfo::current(config.role),
        }
    }

    /// Makes this process sign its own upstream requests (an edge's pulls
    /// and fetches) with the signing secret, if one is configured.
    pub fn sign_upstream_requests(&self) {
        if let Some(s) = &self.secrets {
            upstream::install(Arc::clone(s));
        }
    }

    /// True when anyone may play.
    pub fn is_open(&self) -> bool {
        self.secrets.is_none() && self.webhook.is_none()
    }

    /// Checks a play of `resource` (`APP/NAME` or `vod/FILE`) with the
    /// request's raw `query`, from `client`.
    pub async fn check(
        &self,
        resource: &str,
        query: Option<&str>,
        client: IpAddr,
        kind: PlayKind,
    ) -> Result<(), Refusal> {
        let q = Query::parse(query);
        if let Some(secrets) = &self.secrets {
            let loaded = secrets.get();
            let Ok(lines) = loaded.as_ref() else {
                return Err(Reason::Unavailable.into());
            };
            let keys: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
            let bind = self.bind_addr.then_some(client);
            signing::verify(&keys, resource, &q, unix_now(), bind)?;
            // An edge's own upstream request: viewers were checked on the edge.
            if q.get(signing::VIA_PARAM) == Some(signing::EDGE_BINDING) {
                return Ok(());
            }
        }
        let Some(hook) = &self.webhook else {
            return Ok(());
        };
        // A digest, not the text: queries can be kilobytes, and the cache
        // holds up to PLAY_CACHE_MAX of them.
        let cache_key = {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(
                format!("{client}\n{resource}\n{}", query.unwrap_or_default()).as_bytes(),
            );
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD_NO_PAD, digest)
        };
        let now = tokio::time::Instant::now();
        if let Some(decision) = self.decisions().get(&cache_key, now) {
            return decision;
        }
        let (app, name) = resource.split_once('/').unwrap_or((resource, ""));
        let request = HookRequest {
            action: "play",
            app,
            name,
            query: q.pairs(),
            client_addr: signing::canonical_ip(client).to_string(),
            protocol: kind.as_str(),
            server: self.server.clone(),
        };
        let decision = ask(hook, &request).await;
        self.decisions()
            .put(cache_key, decision.clone(), tokio::time::Instant::now());
        decision
    }

    fn decisions(&self) -> std::sync::MutexGuard<'_, DecisionCache> {
        self.decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthConfig;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("fc-auth-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn config(auth: AuthConfig) -> Config {
        Config {
            auth,
            ..Config::default()
        }
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn open_without_configuration() {
        let auth = PublishAuth::from_config(&Config::default());
        assert_eq!(auth.check("live", "cam", None, IP).await, Ok(()));
        let play = PlayAuth::from_config(&Config::default());
        assert!(play.is_open());
        assert_eq!(
            play.check("live/cam", None, IP, PlayKind::Flv).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn token_file_and_keys_must_both_pass() {
        let d = dir("both");
        std::fs::write(d.join("token"), " t0k \n").unwrap();
        let keys = d.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(keys.join("live.cam"), "k1\n").unwrap();
        let auth = PublishAuth::from_config(&config(AuthConfig {
            publish_token_file: Some(d.join("token")),
            publish_keys_dir: Some(keys),
            ..AuthConfig::default()
        }));
        let check = |q: &'static str| auth.check("live", "cam", Some(q), IP);
        assert_eq!(check("token=t0k&key=k1").await, Ok(()));
        assert_eq!(check("key=k1").await.unwrap_err().reason, Reason::BadKey);
        assert_eq!(check("token=t0k").await.unwrap_err().reason, Reason::BadKey);
        assert_eq!(
            auth.check("live", "other", Some("token=t0k&key=k1"), IP)
                .await
                .unwrap_err()
                .reason,
            Reason::NoKey
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn base64_token_and_key_match_raw_and_percent_encoded() {
        let d = dir("b64");
        std::fs::write(d.join("token"), "a+b/c=\n").unwrap();
        let keys = d.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(keys.join("live.cam"), "k+1=\n").unwrap();
        let auth = PublishAuth::from_config(&config(AuthConfig {
            publish_token_file: Some(d.join("token")),
            publish_keys_dir: Some(keys),
            ..AuthConfig::default()
        }));
        let check = |q: &'static str| auth.check("live", "cam", Some(q), IP);
        assert_eq!(check("token=a+b/c=&key=k+1=").await, Ok(()));
        assert_eq!(check("token=a%2Bb%2Fc%3D&key=k%2B1%3D").await, Ok(()));
        assert_eq!(check("token=a%2bb/c=&key=k+1%3d").await, Ok(()));
        // `+` is not a space here, nor a space a `+`.
        let refused = check("token=a%20b/c=&key=k+1=").await.unwrap_err();
        assert_eq!(refused.reason, Reason::BadKey);
        let refused = check("token=a+b/c=&key=k%201=").await.unwrap_err();
        assert_eq!(refused.reason, Reason::BadKey);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn unreadable_files_fail_closed() {
        let auth = PublishAuth::from_config(&config(AuthConfig {
            publish_keys_dir: Some("/nonexistent/keys".into()),
            ..AuthConfig::default()
        }));
        let e = auth
            .check("live", "cam", Some("key=x"), IP)
            .await
            .unwrap_err();
        assert_eq!(e.reason, Reason::Unavailable);
        let play = PlayAuth::from_config(&config(AuthConfig {
            play_signing_secret_file: Some("/nonexistent/secret".into()),
            ..AuthConfig::default()
        }));
        assert!(!play.is_open());
        let e = play
            .check("live/cam", Some("expires=1&token=x"), IP, PlayKind::Hls)
            .await
            .unwrap_err();
        assert_eq!(e.reason, Reason::Unavailable);
    }

    #[tokio::test]
    async fn signed_play_checks_the_resource() {
        let d = dir("play");
        std::fs::write(d.join("secret"), "s1\n").unwrap();
        let play = PlayAuth::from_config(&config(AuthConfig {
            play_signing_secret_file: Some(d.join("secret")),
            ..AuthConfig::default()
        }));
        let q = signing::query(b"s1", "live/cam", unix_now() + 60, signing::Binding::None);
        assert_eq!(
            play.check("live/cam", Some(&q), IP, PlayKind::Flv).await,
            Ok(())
        );
        assert_eq!(
            play.check("live/x", Some(&q), IP, PlayKind::Flv)
                .await
                .unwrap_err()
                .reason,
            Reason::BadToken
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
