//! Authorization webhooks, as nginx-rtmp's `on_publish`/`on_play` and SRS's
//! HTTP hooks: `POST` a JSON description of the request; a 2xx answer
//! allows it, anything else denies it with the body's first line as the
//! reason, and no answer in time (or none at all) denies it: fail closed.
//! The client is hyper's (already used by the edge cache), plain HTTP.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::time::Instant;

use super::reason::{Reason, Refusal};
use crate::config::WebhookConfig;

/// Most of a denial's body read for its reason.
const MAX_BODY: usize = 4096;
/// Longest reason passed on to a peer.
const MAX_REASON: usize = 200;

/// What is sent to the webhook.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HookRequest<'a> {
    /// `publish` or `play`.
    pub action: &'static str,
    /// The application (`vod` for files).
    pub app: &'a str,
    /// The stream name (for files: the path after `/vod/`).
    pub name: &'a str,
    /// The decoded query of the stream name or URL.
    pub query: &'a BTreeMap<String, String>,
    /// The client's IP address.
    pub client_addr: String,
    /// `rtmp`, `flv`, `hls` or `vod` (HTTP file).
    pub protocol: &'static str,
    /// Which server asks.
    pub server: ServerInfo,
}

/// The asking server, in [`HookRequest`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ServerInfo {
    /// `origin` or `edge`.
    pub role: &'static str,
    /// The pod name (`POD_NAME`, else `HOSTNAME`), empty outside Kubernetes.
    pub pod: String,
}

impl ServerInfo {
    /// This process.
    pub fn current(role: crate::config::Role) -> Self {
        Self {
            role: role.as_str(),
            pod: std::env::var("POD_NAME")
                .or_else(|_| std::env::var("HOSTNAME"))
                .unwrap_or_default(),
        }
    }
}

/// The decision an answer carries (pure).
pub fn decide(status: u16, body: &[u8]) -> Result<(), Refusal> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(body);
    let first = text.lines().map(str::trim).find(|l| !l.is_empty());
    let description = match first {
        Some(line) => line
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_REASON)
            .collect(),
        None => format!("denied by the authorization webhook (HTTP {status})"),
    };
    Err(Refusal {
        reason: Reason::WebhookDenied,
        description,
    })
}

/// A configured webhook.
#[derive(Clone)]
pub struct Webhook {
    url: hyper::Uri,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// A client for `config` (its URL was validated with the config).
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        let url: hyper::Uri = config
            .url
            .parse()
            .map_err(|e| format!("{:?}: {e}", config.url))?;
        if url.scheme_str() != Some("http") || url.host().is_none() {
            return Err(format!(
                "{:?} is not an http://HOST[:PORT]/PATH URL",
                config.url
            ));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            url,
            timeout: Duration::from_millis(config.timeout_ms),
            client,
        })
    }

    /// Asks the webhook; the whole exchange (connect, answer, body) is
    /// bounded by the configured timeout.
    pub async fn ask(&self, request: &HookRequest<'_>) -> Result<(), Refusal> {
        let unreachable = |why: String| Refusal {
            reason: Reason::WebhookUnreachable,
            description: format!("authorization webhook unreachable: {why}"),
        };
        let body = serde_json::to_vec(request).map_err(|e| unreachable(e.to_string()))?;
        let req = hyper::Request::post(self.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "fleetcast-media")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| unreachable(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(req)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                return Ok(());
            }
            // A denial's body too large to read still denies.
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            decide(status, &body)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(unreachable(format!("no answer in {:?}", self.timeout))),
        }
    }
}

/// Recent decisions, so an HLS player's playlist reloads and segments ask
/// the webhook once per session rather than per request. Bounded: when
/// full, expired entries go, then everything.
#[derive(Debug)]
pub struct DecisionCache {
    allow_ttl: Duration,
    deny_ttl: Duration,
    max: usize,
    entries: HashMap<String, (Instant, Result<(), Refusal>)>,
}

impl DecisionCache {
    /// Allowances kept for `allow_ttl`, denials for `deny_ttl`, at most `max`.
    pub fn new(allow_ttl: Duration, deny_ttl: Duration, max: usize) -> Self {
        Self {
            allow_ttl,
            deny_ttl,
            max,
            entries: HashMap::new(),
        }
    }

    /// The decision for `key` if still fresh at `now`.
    pub fn get(&self, key: &str, now: Instant) -> Option<Result<(), Refusal>> {
        let (until, decision) = self.entries.get(key)?;
        (now < *until).then(|| decision.clone())
    }

    /// Keeps `decision` for `key` from `now`. Unreachable webhooks are not
    /// remembered: the next request asks again.
    pub fn put(&mut self, key: String, decision: Result<(), Refusal>, now: Instant) {
        let ttl = match &decision {
            Ok(()) => self.allow_ttl,
            Err(r) if r.reason == Reason::WebhookUnreachable => return,
            Err(_) => self.deny_ttl,
        };
        if self.entries.len() >= self.max {
            self.entries.retain(|_, (until, _)| *until > now);
            if self.entries.len() >= self.max {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (now + ttl, decision));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hundreds_allow_others_deny_with_the_first_line() {
        assert_eq!(decide(200, b""), Ok(()));
        assert_eq!(decide(204, b"whatever"), Ok(()));
        let e = decide(403, b"\n  stream key revoked \nmore").unwrap_err();
        assert_eq!(e.reason, Reason::WebhookDenied);
        assert_eq!(e.description, "stream key revoked");
        let e = decide(500, b"").unwrap_err();
        assert!(e.description.contains("HTTP 500"), "{e:?}");
        let e = decide(401, "x\u{1b}[31my".as_bytes()).unwrap_err();
        assert_eq!(e.description, "x[31my");
        let long = "a".repeat(1000);
        assert_eq!(
            decide(403, long.as_bytes()).unwrap_err().description.len(),
            MAX_REASON
        );
        // Redirects are not followed: they deny.
        assert!(decide(302, b"").is_err());
    }

    #[test]
    fn request_json_has_the_contract_fields() {
        let query = BTreeMap::from([("key".to_owned(), "k".to_owned())]);
        let r = HookRequest {
            action: "publish",
            app: "live",
            name: "cam",
            query: &query,
            client_addr: "10.0.0.1".into(),
            protocol: "rtmp",
            server: ServerInfo {
                role: "origin",
                pod: "o-0".into(),
            },
        };
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["action"], "publish");
        assert_eq!(v["app"], "live");
        assert_eq!(v["name"], "cam");
        assert_eq!(v["query"]["key"], "k");
        assert_eq!(v["client_addr"], "10.0.0.1");
        assert_eq!(v["server"]["role"], "origin");
        assert_eq!(v["server"]["pod"], "o-0");
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in ["https://x/y", "ftp://x", "not a url", "/path"] {
            let c = WebhookConfig {
                url: url.into(),
                timeout_ms: 100,
            };
            assert!(Webhook::new(&c).is_err(), "{url}");
        }
    }

    #[test]
    fn cache_keeps_decisions_for_their_ttl() {
        let mut c = DecisionCache::new(Duration::from_secs(30), Duration::from_secs(5), 2);
        let t0 = Instant::now();
        c.put("a".into(), Ok(()), t0);
        c.put("b".into(), Err(Reason::WebhookDenied.into()), t0);
        c.put("u".into(), Err(Reason::WebhookUnreachable.into()), t0);
        assert_eq!(c.get("a", t0 + Duration::from_secs(29)), Some(Ok(())));
        assert_eq!(c.get("a", t0 + Duration::from_secs(30)), None);
        assert!(c.get("b", t0 + Duration::from_secs(4)).unwrap().is_err());
        assert_eq!(c.get("b", t0 + Duration::from_secs(5)), None);
        assert_eq!(c.get("u", t0), None);
        // Full: expired entries make room, else everything goes.
        c.put("c".into(), Ok(()), t0 + Duration::from_secs(10));
        assert_eq!(c.get("c", t0 + Duration::from_secs(10)), Some(Ok(())));
        assert_eq!(c.entries.len(), 2);
    }

    #[tokio::test]
    async fn unreachable_webhook_denies() {
        // A port nothing listens on: bind, learn the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let hook = Webhook::new(&WebhookConfig {
            url: format!("http://127.0.0.1:{port}/auth"),
            timeout_ms: 2000,
        })
        .unwrap();
        let query = BTreeMap::new();
        let r = hook
            .ask(&HookRequest {
                action: "play",
                app: "live",
                name: "cam",
                query: &query,
                client_addr: "127.0.0.1".into(),
                protocol: "flv",
                server: ServerInfo::current(crate::config::Role::Origin),
            })
            .await
            .unwrap_err();
        assert_eq!(r.reason, Reason::WebhookUnreachable);
    }
}
