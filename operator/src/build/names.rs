//! Names, labels and owner references of everything a MediaCluster owns.
//!
//! Child names are derived from the MediaCluster and pool names only, so the
//! desired set is known without reading the cluster and pruning can compare
//! names. The CRD's CEL rules keep every derived name within 63 characters.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use crate::crd::MediaCluster;

/// The field manager of every server-side apply and the managed-by label value.
pub const MANAGER: &str = "fleetcast-operator";
/// `app.kubernetes.io/name` of every media-server pod.
pub const APP_NAME: &str = "fleetcast-media";
/// Label naming the edge pool of an object.
pub const POOL_LABEL: &str = "fleetcast.io/pool";
/// Pod-template annotation carrying the hash of the rendered media config.
pub const CONFIG_HASH_ANNOTATION: &str = "fleetcast.io/config-hash";
/// Where the media config is mounted in every pod.
pub const CONFIG_DIR: &str = "/etc/fleetcast";
/// The config file the media server is started with.
pub const CONFIG_FILE: &str = "config.yaml";

/// Which part of the cluster an object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component<'a> {
    /// The origins.
    Origin,
    /// One edge pool.
    Edge(&'a str),
}

impl Component<'_> {
    /// `app.kubernetes.io/component`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Origin => "origin",
            Self::Edge(_) => "edge",
        }
    }
}

/// Origin workload, its headless Service, ConfigMap and PDB.
pub fn origin(mc: &str) -> String {
    format!("{mc}-origin")
}

/// The ingest Service publishers connect to.
pub fn ingest(mc: &str) -> String {
    format!("{mc}-ingest")
}

/// An edge pool's Deployment, Service, ConfigMap, PDB and HPA.
pub fn edge(mc: &str, pool: &str) -> String {
    format!("{mc}-edge-{pool}")
}

/// An edge pool's headless peer Service (clustered and redirect modes).
pub fn edge_peers(mc: &str, pool: &str) -> String {
    format!("{mc}-edge-{pool}-peers")
}

/// In-cluster DNS name of a Service.
pub fn service_host(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc")
}

/// Labels that select the pods of one component (stable: never change them on a live object).
pub fn selector(mc: &str, component: Component<'_>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), APP_NAME.to_owned()),
        ("app.kubernetes.io/instance".to_owned(), mc.to_owned()),
        (
            "app.kubernetes.io/component".to_owned(),
            component.label().to_owned(),
        ),
    ]);
    if let Component::Edge(pool) = component {
        labels.insert(POOL_LABEL.to_owned(), pool.to_owned());
    }
    labels
}

/// The recommended `app.kubernetes.io/*` labels on every object, plus the pool.
pub fn labels(mc: &str, component: Component<'_>, version: &str) -> BTreeMap<String, String> {
    let mut labels = selector(mc, component);
    labels.insert(
        "app.kubernetes.io/part-of".to_owned(),
        "fleetcast".to_owned(),
    );
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        MANAGER.to_owned(),
    );
    if let Some(version) = label_value(version) {
        labels.insert("app.kubernetes.io/version".to_owned(), version);
    }
    labels
}

/// Label selector (as a string) matching every child of one MediaCluster.
pub fn children_selector(mc: &str) -> String {
    format!("app.kubernetes.io/instance={mc},app.kubernetes.io/managed-by={MANAGER}")
}

/// An image tag as a label value: at most 63 characters of `[A-Za-z0-9._-]`.
fn label_value(value: &str) -> Option<String> {
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// The controller owner reference every child carries, so deleting the
/// MediaCluster garbage-collects them and their events wake its reconcile.
pub fn owner_reference(mc: &MediaCluster) -> Option<OwnerReference> {
    let mut owner = mc.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

/// Namespace and name of a MediaCluster, for messages.
pub fn display(mc: &MediaCluster) -> String {
    format!("{}/{}", mc.namespace().unwrap_or_default(), mc.name_any())
}

/// The API version and kind strings of a MediaCluster.
pub fn mc_type() -> (String, String) {
    (
        MediaCluster::api_version(&()).into_owned(),
        MediaCluster::kind(&()).into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("0.1.0").as_deref(), Some("0.1.0"));
        assert_eq!(label_value("sha256:abc").as_deref(), Some("sha256_abc"));
        assert_eq!(label_value("--").as_deref(), None);
        assert_eq!(label_value(&"a".repeat(80)).map(|v| v.len()), Some(63));
    }

    #[test]
    fn pool_selector_differs_from_origin() {
        let o = selector("live", Component::Origin);
        let e = selector("live", Component::Edge("tokyo"));
        assert_eq!(o["app.kubernetes.io/component"], "origin");
        assert_eq!(e[POOL_LABEL], "tokyo");
        assert!(!o.contains_key(POOL_LABEL));
    }
}
