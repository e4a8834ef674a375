//! Desired state: pure functions from a `MediaCluster` to every object it
//! should own. No I/O here; `reconcile` applies what these return.

pub mod admin;
pub mod edge;
pub mod media_config;
pub mod names;
pub mod network_policy;
pub mod origin;
pub mod pod;
pub mod quantity;
pub mod security;
pub mod topology;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::crd::MediaCluster;

/// Kinds of object a MediaCluster owns, in the order they are applied
/// (config before the workloads that mount it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Media-server config.
    ConfigMap,
    /// Ingest, headless, pool and peer Services.
    Service,
    /// Origins without per-pod volumes, and edge pools.
    Deployment,
    /// Origins with a volume each.
    StatefulSet,
    /// One per component.
    PodDisruptionBudget,
    /// Pools scaling on CPU.
    HorizontalPodAutoscaler,
    /// Who may reach the pods (`spec.security.networkPolicy`).
    NetworkPolicy,
}

impl Kind {
    /// Every kind, in apply order.
    pub const ALL: [Kind; 7] = [
        Kind::ConfigMap,
        Kind::Service,
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::PodDisruptionBudget,
        Kind::HorizontalPodAutoscaler,
        Kind::NetworkPolicy,
    ];

    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Service => "Service",
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::PodDisruptionBudget => "PodDisruptionBudget",
            Kind::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            Kind::NetworkPolicy => "NetworkPolicy",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object the MediaCluster should own.
#[derive(Debug, Clone, PartialEq)]
pub enum Child {
    /// A ConfigMap.
    ConfigMap(ConfigMap),
    /// A Service.
    Service(Service),
    /// A Deployment.
    Deployment(Deployment),
    /// A StatefulSet.
    StatefulSet(StatefulSet),
    /// A PodDisruptionBudget.
    PodDisruptionBudget(PodDisruptionBudget),
    /// A HorizontalPodAutoscaler.
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    /// A NetworkPolicy.
    NetworkPolicy(NetworkPolicy),
}

impl Child {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Child::ConfigMap(_) => Kind::ConfigMap,
            Child::Service(_) => Kind::Service,
            Child::Deployment(_) => Kind::Deployment,
            Child::StatefulSet(_) => Kind::StatefulSet,
            Child::PodDisruptionBudget(_) => Kind::PodDisruptionBudget,
            Child::HorizontalPodAutoscaler(_) => Kind::HorizontalPodAutoscaler,
            Child::NetworkPolicy(_) => Kind::NetworkPolicy,
        }
    }

    /// Its metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Child::ConfigMap(o) => &o.metadata,
            Child::Service(o) => &o.metadata,
            Child::Deployment(o) => &o.metadata,
            Child::StatefulSet(o) => &o.metadata,
            Child::PodDisruptionBudget(o) => &o.metadata,
            Child::HorizontalPodAutoscaler(o) => &o.metadata,
            Child::NetworkPolicy(o) => &o.metadata,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// Kind and name, the identity pruning compares.
    pub fn key(&self) -> ChildKey {
        ChildKey {
            kind: self.kind(),
            name: self.name().to_owned(),
        }
    }
}

/// Kind and name of a child.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChildKey {
    /// Kind.
    pub kind: Kind,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ChildKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Why the desired state cannot be built: the spec asks for something that
/// cannot be wired. Reported as `Degraded`; nothing in the cluster changes.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The object has no namespace or uid yet (never from the API server).
    #[error("MediaCluster has no {0}")]
    MissingMetadata(&'static str),
    /// Pools cannot be wired.
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    /// A media config could not be rendered.
    #[error(transparent)]
    Config(#[from] media_config::ConfigError),
    /// A pool's autoscaling.behavior is not one the HPA API would accept.
    #[error("edge pool {pool}: {source}")]
    Behavior {
        /// The pool.
        pool: String,
        /// What is wrong.
        source: crate::autoscale::behavior::BehaviorError,
    },
    /// A pod override is not a valid partial PodTemplateSpec.
    #[error("{component}: podOverrides is not a valid PodTemplateSpec: {source}")]
    PodOverrides {
        /// `origin` or `edge pool NAME`.
        component: String,
        /// Why it does not parse.
        source: serde_json::Error,
    },
}

impl BuildError {
    /// A short CamelCase reason for conditions, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BuildError::MissingMetadata(_) => "MissingMetadata",
            BuildError::Topology(t) => t.reason(),
            BuildError::Config(media_config::ConfigError::Quantity { .. }) => "InvalidQuantity",
            BuildError::Config(_) => "InvalidMediaConfig",
            BuildError::PodOverrides { .. } => "InvalidPodOverrides",
            BuildError::Behavior { .. } => "InvalidAutoscalingBehavior",
        }
    }
}

/// Inputs besides the MediaCluster.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Image tag when the spec names none (the operator's version).
    pub default_tag: String,
    /// The operator's namespace: its autoscaler may reach the pods' admin port
    /// through the NetworkPolicy.
    pub operator_namespace: Option<String>,
}

/// Everything a MediaCluster should own, in apply order.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// The children.
    pub children: Vec<Child>,
}

impl Desired {
    /// The identities of the children.
    pub fn keys(&self) -> Vec<ChildKey> {
        self.children.iter().map(Child::key).collect()
    }

    /// The child with this kind and name.
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Child> {
        self.children
            .iter()
            .find(|c| c.kind() == kind && c.name() == name)
    }
}

/// What every child's metadata starts from.
pub(crate) struct Owner {
    pub mc: String,
    pub namespace: String,
    pub reference: OwnerReference,
    pub version: String,
}

impl Owner {
    pub(crate) fn meta(
        &self,
        name: String,
        component: names::Component<'_>,
        annotations: Option<BTreeMap<String, String>>,
    ) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(names::labels(&self.mc, component, &self.version)),
            annotations: annotations.filter(|a| !a.is_empty()),
            owner_references: Some(vec![self.reference.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// The ConfigMap holding a component's rendered media config.
    pub(crate) fn config_map(
        &self,
        name: &str,
        component: names::Component<'_>,
        yaml: String,
    ) -> ConfigMap {
        ConfigMap {
            metadata: self.meta(name.to_owned(), component, None),
            data: Some(BTreeMap::from([(names::CONFIG_FILE.to_owned(), yaml)])),
            ..ConfigMap::default()
        }
    }

    /// A PodDisruptionBudget letting one pod of the component go at a time
    /// (works at any replica count, unlike minAvailable).
    pub(crate) fn pdb(
        &self,
        name: &str,
        component: names::Component<'_>,
        selector: &LabelSelector,
    ) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: self.meta(name.to_owned(), component, None),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(selector.clone()),
                ..PodDisruptionBudgetSpec::default()
            }),
            ..PodDisruptionBudget::default()
        }
    }

    /// A Service selecting a component's pods; headless when `headless`.
    pub(crate) fn service(
        &self,
        name: String,
        component: names::Component<'_>,
        annotations: Option<BTreeMap<String, String>>,
        type_: Option<&str>,
        headless: bool,
        ports: Vec<ServicePort>,
    ) -> Service {
        Service {
            metadata: self.meta(name, component, annotations),
            spec: Some(ServiceSpec {
                type_: type_.map(str::to_owned),
                cluster_ip: headless.then(|| "None".to_owned()),
                selector: Some(names::selector(&self.mc, component)),
                ports: Some(ports),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }
}

/// A TCP Service port that targets the container port of the same name.
pub(crate) fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// Builds every child of `mc`. Fails (and the caller changes nothing) when the
/// spec cannot be wired.
pub fn desired(mc: &MediaCluster, inputs: &Inputs) -> Result<Desired, BuildError> {
    let namespace = mc
        .namespace()
        .ok_or(BuildError::MissingMetadata("namespace"))?;
    let reference = names::owner_reference(mc).ok_or(BuildError::MissingMetadata("uid"))?;
    topology::check(&mc.spec.edges)?;
    let version = mc
        .spec
        .image
        .tag
        .clone()
        .unwrap_or_else(|| inputs.default_tag.clone());
    let owner = Owner {
        mc: mc.name_any(),
        namespace,
        reference,
        version,
    };
    let mut children = origin::children(mc, &owner, inputs)?;
    for pool in &mc.spec.edges {
        children.extend(edge::children(mc, pool, &owner, inputs)?);
    }
    children.extend(network_policy::children(
        mc,
        &owner,
        inputs.operator_namespace.as_deref(),
    ));
    children.sort_by_key(Child::kind);
    Ok(Desired { children })
}

/// The children to delete: owned by the MediaCluster (found by its label
/// selector) but no longer desired.
pub fn prune_set(desired: &[ChildKey], existing: &[ChildKey]) -> Vec<ChildKey> {
    let mut stale: Vec<ChildKey> = existing
        .iter()
        .filter(|key| !desired.contains(key))
        .cloned()
        .collect();
    // Delete workloads before the config and Services they use.
    stale.sort_by(|a, b| b.kind.cmp(&a.kind).then_with(|| a.name.cmp(&b.name)));
    stale.dedup();
    stale
}

#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod tests;
