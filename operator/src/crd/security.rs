//! The parts of `spec.security` that say who may publish, who may play and
//! who may reach the pods: Secrets mounted into the media pods, HTTP
//! callbacks, and a NetworkPolicy per MediaCluster. `SecuritySpec` itself
//! lives in `v1alpha1` beside the rest of the spec.

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Shortest webhook timeout: below it a healthy hook on another node would time out.
pub const MIN_WEBHOOK_TIMEOUT_MS: u32 = 100;
/// Longest webhook timeout: a publisher or viewer waits this long at most.
pub const MAX_WEBHOOK_TIMEOUT_MS: u32 = 30_000;
/// Most peers in one NetworkPolicy list.
pub const MAX_PEERS: usize = 64;

/// Per-stream publish keys: a Secret whose keys are `APP.NAME` (one stream)
/// or `APP` (every stream of the application), each holding one key per line.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishKeys {
    /// Secret in the MediaCluster's namespace, mounted whole into the origins
    /// (edits reach the pods without a restart).
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// An HTTP callback asked before a publish or play: a 2xx answer allows,
/// anything else (or no answer within the timeout) refuses.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.url.matches('^http://[^ /?#]+([/?][^ #]*)?$')")
    .message("webhook url must be an http://HOST[:PORT]/PATH URL without spaces or fragment (the media server calls webhooks over plain HTTP inside the cluster)")
    .field_path(".url"))]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// `http://HOST[:PORT]/PATH` the media server POSTs a JSON description of the request to
    /// (plain HTTP: run the hook inside the cluster, or behind a Service that terminates TLS).
    #[schemars(length(min = 8, max = 2048))]
    pub url: String,
    /// Milliseconds to wait for the answer; no answer in time refuses (fail closed).
    #[serde(default = "default_webhook_timeout_ms")]
    #[schemars(range(min = 100, max = 30000))]
    pub timeout_ms: u32,
}

fn default_webhook_timeout_ms() -> u32 {
    2000
}

/// Signed playback URLs: `?expires=UNIX_SECS&token=HMAC`, verified by origins and edges.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaybackSigning {
    /// Secret in the MediaCluster's namespace holding the HMAC secret(s), one per
    /// line: the first signs, every line verifies (rotation).
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Key within the Secret.
    #[serde(default = "default_signing_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// Make the viewer's IP address part of the signature (a URL then works from one address only).
    #[serde(default)]
    pub bind_client_address: bool,
}

fn default_signing_key() -> String {
    "secret".to_owned()
}

/// A NetworkPolicy per MediaCluster restricting who reaches its pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the policies (origins: ingest from `publishers`, everything from
    /// this cluster's edges; edges: playback from `viewers`; admin and metrics
    /// from this namespace and the operator's).
    #[serde(default)]
    pub enabled: bool,
    /// Who may send RTMP to the origins; empty means from anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub publishers: Vec<NetworkPolicyPeer>,
    /// Who may play from the edges; empty means from anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub viewers: Vec<NetworkPolicyPeer>,
}
