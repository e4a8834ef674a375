//! `fleetcast.io/v1alpha1` `MediaCluster`: the spec a user writes and the
//! status the operator reports.
//!
//! Validation that CEL can express lives here, as `x-kubernetes-validations`
//! on the schema, so the API server rejects a bad spec with a readable
//! message. What CEL cannot express (upstream cycles longer than one pool) is
//! checked by the operator (`build::topology`).

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::security::{NetworkPolicySpec, PlaybackSigning, PublishKeys, WebhookSpec};

/// Longest pool name; `NAME-edge-POOL-peers` must stay a 63-character DNS label.
pub const MAX_POOL_NAME: usize = 20;
/// Most edge pools one MediaCluster may have (bounds the cost of the CEL rules).
pub const MAX_POOLS: usize = 16;
/// The upstream value that means "the origins" rather than another pool.
pub const ORIGIN_UPSTREAM: &str = "origin";

/// A live and on-demand media cluster: redundant origins taking RTMP ingest,
/// and named pools of caching edges that pull from them (or from another pool).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "fleetcast.io",
    version = "v1alpha1",
    kind = "MediaCluster",
    namespaced,
    shortname = "mc",
    category = "fleetcast",
    status = "MediaClusterStatus",
    derive = "PartialEq",
    doc = "A Fleetcast media cluster: origins taking ingest and pools of caching edges wired to them.",
    printcolumn(name = "Origins", type_ = "string", json_path = ".status.originsReady", description = "ready/desired origin pods"),
    printcolumn(name = "Edges", type_ = "string", json_path = ".status.edgesReady", description = "ready/desired edge pods over all pools"),
    printcolumn(name = "Viewers", type_ = "integer", json_path = ".status.viewers", description = "viewers over all edge pools"),
    printcolumn(name = "Ingest", type_ = "string", json_path = ".status.endpoints.ingest", description = "RTMP ingest URL"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40")
        .message("a MediaCluster name must be a DNS label of at most 40 characters starting with a letter: it names the Services and workloads the operator creates"),
    validation = Rule::new("self.spec.edges.all(e, size(self.metadata.name) + size(e.name) <= 51)")
        .message("MediaCluster name and edge pool name together must be at most 51 characters, so that child names like NAME-edge-POOL-peers fit in 63"),
)]
#[x_kube(
    validation = Rule::new("self.edges.all(e, self.edges.filter(f, f.name == e.name).size() == 1)")
        .message("edge pool names must be unique within a MediaCluster")
        .field_path(".edges"),
    validation = Rule::new("self.edges.all(e, e.upstream == 'origin' || self.edges.exists(f, f.name == e.upstream))")
        .message("every edge pool's upstream must be \"origin\" or the name of another pool in spec.edges")
        .field_path(".edges"),
)]
#[serde(rename_all = "camelCase")]
pub struct MediaClusterSpec {
    /// The media-server image every pod runs.
    #[serde(default)]
    pub image: ImageSpec,
    /// The origins: ingest, recording, VOD, and the source every edge pulls from.
    #[serde(default)]
    pub origin: OriginSpec,
    /// Named pools of caching edges (e.g. one per region).
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub edges: Vec<EdgePool>,
    /// How edges of one pool share streams and cached objects.
    #[serde(default)]
    pub balancing: BalancingSpec,
    /// When true the operator leaves every child object as it is and only reports status.
    #[serde(default)]
    pub paused: bool,
    /// Who may publish, who may play and who may reach the pods (docs/security.md).
    #[serde(default, skip_serializing_if = "SecuritySpec::is_empty")]
    pub security: SecuritySpec,
    /// How live media is written to players, on origins and edges alike.
    #[serde(default, skip_serializing_if = "PlaybackSpec::is_empty")]
    pub playback: PlaybackSpec,
}

/// Live delivery to RTMP, HTTP-FLV and live-MP4 players.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaybackSpec {
    /// Milliseconds between writes to a live player (default 200; 0 writes
    /// every frame as it comes): larger costs less CPU per viewer and adds
    /// up to this much latency. Keyframes are written at once; HLS is not
    /// affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub write_interval_ms: Option<u32>,
}

impl PlaybackSpec {
    /// Nothing set: the media server's defaults.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Publish keys, signed playback, webhooks and the NetworkPolicy; every part
/// optional, and without any of them the cluster behaves as before.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySpec {
    /// Per-stream publish keys from a Secret (mounted into the origins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_keys: Option<PublishKeys>,
    /// An HTTP callback that allows or refuses each publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_webhook: Option<WebhookSpec>,
    /// Let a second publisher of a live stream replace the first (default: refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_takeover: bool,
    /// Signed playback URLs, verified by origins and edges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback_signing: Option<PlaybackSigning>,
    /// An HTTP callback that allows or refuses each play.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play_webhook: Option<WebhookSpec>,
    /// A NetworkPolicy per MediaCluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,
    /// The Bearer token the media servers' admin port requires for changes
    /// (`DELETE /api/streams/APP/NAME`); without it those are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<AdminToken>,
}

/// A key of a Secret holding the admin token (one per line, every line
/// accepted), mounted into origins and edges at `/etc/fleetcast/admin/token`;
/// edits reach the pods without a restart.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminToken {
    /// Secret in the MediaCluster's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Key within the Secret.
    #[serde(default = "default_admin_token_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_admin_token_key() -> String {
    "token".to_owned()
}

impl SecuritySpec {
    /// Nothing set: the spec serializes without `security`.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Whether a NetworkPolicy is wanted.
    pub fn network_policy_enabled(&self) -> bool {
        self.network_policy.as_ref().is_some_and(|n| n.enabled)
    }
}

/// The media-server image.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Image repository, without tag.
    #[serde(default = "default_repository")]
    pub repository: String,
    /// Image tag; defaults to the operator's own version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Kubernetes image pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Names of Secrets in the MediaCluster's namespace used to pull the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<String>,
}

fn default_repository() -> String {
    "ghcr.io/fleetcast/fleetcast-media".to_owned()
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self {
            repository: default_repository(),
            tag: None,
            pull_policy: None,
            pull_secrets: Vec::new(),
        }
    }
}

/// Kubernetes image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull when the node does not have the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The value Kubernetes expects in a container spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// The origin tier.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OriginSpec {
    /// Number of origin pods; two or more so one can fail without dropping ingest.
    #[serde(default = "default_origin_replicas")]
    #[schemars(range(min = 1, max = 64))]
    pub replicas: i32,
    /// Compute resources of each origin pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Where VOD files and recordings live.
    #[serde(default)]
    pub storage: StorageSpec,
    /// The Service publishers send RTMP to.
    #[serde(default)]
    pub ingest: IngestServiceSpec,
    /// Secret with the publish credentials; without it anyone reaching ingest may publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_auth: Option<SecretKeyRef>,
    /// Where origin pods may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
    /// Escape hatch: a partial PodTemplateSpec merged over the generated one (containers by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::schema::free_form_object")]
    pub pod_overrides: Option<serde_json::Value>,
}

fn default_origin_replicas() -> i32 {
    2
}

impl Default for OriginSpec {
    fn default() -> Self {
        Self {
            replicas: default_origin_replicas(),
            resources: None,
            storage: StorageSpec::default(),
            ingest: IngestServiceSpec::default(),
            publish_auth: None,
            scheduling: None,
            pod_overrides: None,
        }
    }
}

/// Storage for VOD files and recordings on the origins.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("self.type != 'shared' || has(self.claimName)")
        .message("storage type shared needs claimName: an existing ReadWriteMany PersistentVolumeClaim every origin mounts"),
    validation = Rule::new("self.type != 'perOrigin' || has(self.size)")
        .message("storage type perOrigin needs size: the capacity of the volume each origin gets"),
)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// none: an emptyDir per pod (lost with the pod); shared: one ReadWriteMany claim for all
    /// origins; perOrigin: a volume per origin (the origins become a StatefulSet).
    #[serde(default, rename = "type")]
    pub type_: StorageType,
    /// For shared: the existing ReadWriteMany PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub claim_name: Option<String>,
    /// For perOrigin: the capacity of each origin's volume (e.g. 50Gi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub size: Option<String>,
    /// For perOrigin: the StorageClass of each origin's volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// How origins store VOD files and recordings.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StorageType {
    /// An emptyDir per pod.
    #[default]
    None,
    /// One ReadWriteMany claim mounted by every origin.
    Shared,
    /// A volume per origin, through a StatefulSet's volumeClaimTemplates.
    PerOrigin,
}

/// The ingest Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Annotations on the Service (cloud load balancer settings and the like).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// RTMP port the Service exposes.
    #[serde(default = "default_rtmp_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub rtmp_port: i32,
}

impl Default for IngestServiceSpec {
    fn default() -> Self {
        Self {
            type_: ServiceType::default(),
            annotations: BTreeMap::new(),
            rtmp_port: default_rtmp_port(),
        }
    }
}

fn default_rtmp_port() -> i32 {
    1935
}

fn default_http_port() -> i32 {
    8080
}

/// Kubernetes Service type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster.
    #[default]
    ClusterIP,
    /// A port on every node.
    NodePort,
    /// An external load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The value Kubernetes expects in a Service spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// A key of a Secret in the MediaCluster's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_secret_key")]
    pub key: String,
}

fn default_secret_key() -> String {
    "token".to_owned()
}

/// One pool of edges.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("self.upstream != self.name")
        .message("an edge pool cannot be its own upstream")
        .field_path(".upstream"),
    validation = Rule::new("!has(self.autoscaling) || self.autoscaling.metric != 'cpu' || (has(self.resources) && has(self.resources.requests) && 'cpu' in self.resources.requests)")
        .message("autoscaling on metric cpu needs resources.requests.cpu: utilization is measured against the request")
        .field_path(".autoscaling"),
)]
#[serde(rename_all = "camelCase")]
pub struct EdgePool {
    /// Pool name, e.g. a region (london, tokyo); a DNS label.
    #[x_kube(validation = Rule::new("self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("an edge pool name must be a DNS label: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit"))]
    #[x_kube(validation = Rule::new("self != 'origin'").message("\"origin\" is reserved: it names the origins as an upstream"))]
    #[schemars(length(min = 1, max = 20))]
    pub name: String,
    /// Number of edge pods when autoscaling is not set.
    #[serde(default = "default_edge_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// Scale the pool between bounds on viewers, bandwidth or CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Sizes of the edge's pull-through cache.
    #[serde(default)]
    pub cache: CacheSpec,
    /// Where this pool pulls from: "origin" or the name of another pool (tiered caching).
    #[serde(default = "default_upstream")]
    #[schemars(length(min = 1, max = 20))]
    pub upstream: String,
    /// Where the pool's pods may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
    /// Compute resources of each edge pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The Service viewers reach the pool through.
    #[serde(default)]
    pub service: EdgeServiceSpec,
    /// How an edge leaves when it is scaled down or replaced.
    #[serde(default)]
    pub drain: DrainSpec,
    /// Escape hatch: a partial PodTemplateSpec merged over the generated one (containers by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::schema::free_form_object")]
    pub pod_overrides: Option<serde_json::Value>,
}

/// Draining an edge before it stops: on SIGTERM it fails readiness (leaves the
/// Service), keeps serving for `seconds`, then tells RTMP viewers to reconnect
/// and exits. The pod's terminationGracePeriodSeconds is `seconds` plus the
/// time the server takes to close its connections.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainSpec {
    /// Seconds an edge keeps serving after it left the Service.
    #[serde(default = "default_drain_seconds")]
    #[schemars(range(min = 0, max = 3600))]
    pub seconds: i32,
}

fn default_drain_seconds() -> i32 {
    20
}

impl Default for DrainSpec {
    fn default() -> Self {
        Self {
            seconds: default_drain_seconds(),
        }
    }
}

fn default_edge_replicas() -> i32 {
    2
}

fn default_upstream() -> String {
    ORIGIN_UPSTREAM.to_owned()
}

impl EdgePool {
    /// A pool with defaults, pulling from the origins.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            replicas: default_edge_replicas(),
            autoscaling: None,
            cache: CacheSpec::default(),
            upstream: default_upstream(),
            scheduling: None,
            resources: None,
            service: EdgeServiceSpec::default(),
            drain: DrainSpec::default(),
            pod_overrides: None,
        }
    }
}

/// Autoscaling bounds and signal of a pool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas")
    .message("autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// Fewest pods.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most pods.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// The signal: viewers per pod, egress bandwidth per pod, or CPU utilization (through an HPA).
    #[serde(default)]
    pub metric: ScalingMetric,
    /// Target per pod: viewers, Mbit/s of egress, or percent of the CPU request.
    #[schemars(range(min = 1))]
    pub target: i32,
    /// Stabilization windows, rate policies and tolerance, as in a HorizontalPodAutoscaler
    /// (autoscaling/v2); unset parts take HPA's defaults (scale up at once by up to 100% or 4
    /// pods per 15 s, scale down by the highest recommendation of the last 300 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

fn default_min_replicas() -> i32 {
    1
}

/// What a pool scales on.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ScalingMetric {
    /// Viewers per pod (the operator's own loop).
    #[default]
    Viewers,
    /// Egress Mbit/s per pod (the operator's own loop).
    Bandwidth,
    /// CPU utilization percent (a HorizontalPodAutoscaler).
    Cpu,
}

/// Cache sizes of an edge pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// Memory tier, a quantity (e.g. 256Mi).
    #[serde(default = "default_cache_memory")]
    #[schemars(length(max = 32))]
    pub memory: String,
    /// Disk tier, a quantity (e.g. 10Gi); "0" disables the disk tier.
    #[serde(default = "default_cache_disk")]
    #[schemars(length(max = 32))]
    pub disk: String,
}

fn default_cache_memory() -> String {
    "256Mi".to_owned()
}

fn default_cache_disk() -> String {
    "1Gi".to_owned()
}

impl Default for CacheSpec {
    fn default() -> Self {
        Self {
            memory: default_cache_memory(),
            disk: default_cache_disk(),
        }
    }
}

/// Pod placement.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scheduling {
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Affinity rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Topology spread; the operator fills in the pool's label selector when it is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
}

/// The Service in front of an edge pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Annotations on the Service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Ports the Service exposes.
    #[serde(default)]
    pub ports: EdgePorts,
}

/// Service ports of an edge pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgePorts {
    /// RTMP playback.
    #[serde(default = "default_rtmp_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub rtmp: i32,
    /// HTTP: HLS, HTTP-FLV, VOD.
    #[serde(default = "default_http_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub http: i32,
}

impl Default for EdgePorts {
    fn default() -> Self {
        Self {
            rtmp: default_rtmp_port(),
            http: default_http_port(),
        }
    }
}

/// Balancing among the edges of one pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalancingSpec {
    /// service: plain Service spreading; clustered: each stream has an owner edge, others fetch
    /// from it; redirect: edges redirect viewers to the owner edge.
    #[serde(default)]
    pub mode: BalancingMode,
}

/// Balancing mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BalancingMode {
    /// Kubernetes Service spreading; every edge pulls on its own.
    #[default]
    Service,
    /// Rendezvous-hashed owner edge per stream; one upstream pull per stream per pool.
    Clustered,
    /// Viewers are redirected to the owner edge.
    Redirect,
}

impl BalancingMode {
    /// Whether edges need to know their peers (a headless peer Service).
    pub fn needs_peers(self) -> bool {
        !matches!(self, Self::Service)
    }
}

/// What the operator observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaClusterStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Origin pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<ComponentStatus>,
    /// Per edge pool. A map by name, so the reconciler (replicas) and the
    /// autoscaler (viewers, egress, scaling) each own their fields of an entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub edges: Vec<PoolStatus>,
    /// "ready/desired" origins, for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origins_ready: Option<String>,
    /// "ready/desired" edges over all pools, for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edges_ready: Option<String>,
    /// Viewers over all pools (filled by the autoscaling loop when it reads the edges' stats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewers: Option<i64>,
    /// Where to publish and where to play.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
}

/// Ready and desired pods of one component.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Pods the workload should have.
    #[serde(default)]
    pub desired_replicas: i32,
    /// Pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods running the current pod template.
    #[serde(default)]
    pub updated_replicas: i32,
}

/// Status of one edge pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    /// Pool name.
    pub name: String,
    /// Its pods.
    #[serde(flatten)]
    pub replicas: ComponentStatus,
    /// Viewers on the pool, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewers: Option<i64>,
    /// Egress of the pool in bits per second, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_bits_per_second: Option<i64>,
    /// The viewer or bandwidth autoscaler's view of the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<PoolAutoscalingStatus>,
}

/// What the autoscaler measured and decided for one pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolAutoscalingStatus {
    /// The signal.
    pub metric: ScalingMetric,
    /// Target per pod (viewers, or Mbit/s).
    pub target: i32,
    /// Average per pod over the pods that reported (viewers, or Mbit/s), when any did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_average: Option<f64>,
    /// The Deployment's replicas when last evaluated.
    pub current_replicas: i32,
    /// What the last evaluation decided.
    pub desired_replicas: i32,
    /// Pods whose stats were read.
    #[serde(default)]
    pub pods_measured: i32,
    /// Running pods whose stats could not be read.
    #[serde(default)]
    pub pods_missing: i32,
    /// Pods not started yet.
    #[serde(default)]
    pub pods_not_started: i32,
    /// CamelCase outcome of the last evaluation (WithinTolerance, ScaleDownStabilized, NoMetrics, ...).
    pub reason: String,
    /// The same for people.
    pub message: String,
    /// The last time the autoscaler changed the replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale: Option<ScaleRecord>,
}

/// One change of a pool's replicas by the autoscaler.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleRecord {
    /// When.
    pub time: Time,
    /// Replicas before.
    pub from_replicas: i32,
    /// Replicas after.
    pub to_replicas: i32,
    /// CamelCase reason (MetricAboveTarget, MetricBelowTarget, ScaleUpLimit, ...).
    pub reason: String,
    /// For people.
    pub message: String,
}

/// Published endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// RTMP ingest base URL; publish to INGEST/STREAM.
    pub ingest: String,
    /// Playback base URLs per pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub playback: Vec<PlaybackEndpoint>,
}

/// Playback base URLs of one pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlaybackEndpoint {
    /// Pool name.
    pub pool: String,
    /// RTMP playback base URL.
    pub rtmp: String,
    /// HTTP base URL: APP/STREAM.flv, APP/STREAM/index.m3u8, VOD files.
    pub http: String,
}
