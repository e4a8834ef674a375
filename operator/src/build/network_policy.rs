//! The NetworkPolicies of a MediaCluster (`spec.security.networkPolicy`):
//! publishers reach only the origins' RTMP port, viewers only the edges'
//! playback ports, the cluster's own edges reach the origins and each other,
//! and the admin port (API, metrics) answers only this namespace and the
//! operator's. Ingress only: webhooks and upstream pulls go out freely.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{self, Component, POOL_LABEL};
use super::{Child, Owner};
use crate::crd::MediaCluster;

/// Container port names the rules refer to (named, so they follow the pods' ports).
const RTMP: &str = "rtmp";
const HTTP: &str = "http";
/// The admin port: `/api/*`, `/metrics`.
const ADMIN: &str = "admin";
/// Label every namespace carries with its own name (Kubernetes sets it).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Name of the origins' policy.
pub fn origin_name(mc: &str) -> String {
    names::origin(mc)
}

/// Name of the policy covering every edge pool.
pub fn edges_name(mc: &str) -> String {
    format!("{mc}-edges")
}

fn ports(names: &[&str]) -> Vec<NetworkPolicyPort> {
    names
        .iter()
        .map(|n| NetworkPolicyPort {
            port: Some(IntOrString::String((*n).to_owned())),
            protocol: Some("TCP".to_owned()),
            ..NetworkPolicyPort::default()
        })
        .collect()
}

/// `from` of a rule: no list at all means from anywhere.
fn from(peers: &[NetworkPolicyPeer]) -> Option<Vec<NetworkPolicyPeer>> {
    (!peers.is_empty()).then(|| peers.to_vec())
}

fn rule(port_names: &[&str], peers: Option<Vec<NetworkPolicyPeer>>) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        ports: Some(ports(port_names)),
        from: peers,
    }
}

fn pods(labels: BTreeMap<String, String>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(labels),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

/// Every edge pod of the MediaCluster, whatever its pool.
fn edge_pods(mc: &str) -> BTreeMap<String, String> {
    let mut labels = names::selector(mc, Component::Edge(""));
    labels.remove(POOL_LABEL);
    labels
}

/// Peers allowed on the admin port: every pod of this namespace and of the
/// operator's (the autoscaler reads `/api/stats`).
fn admin_peers(namespace: &str, operator_namespace: Option<&str>) -> Vec<NetworkPolicyPeer> {
    let mut peers = vec![NetworkPolicyPeer {
        // An empty pod selector without a namespace selector: this namespace's pods.
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }];
    if let Some(ns) = operator_namespace.filter(|ns| *ns != namespace) {
        peers.push(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    NAMESPACE_NAME_LABEL.to_owned(),
                    ns.to_owned(),
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        });
    }
    peers
}

fn policy(
    owner: &Owner,
    name: String,
    component: Component<'_>,
    selector: BTreeMap<String, String>,
    ingress: Vec<NetworkPolicyIngressRule>,
) -> NetworkPolicy {
    let mut metadata = owner.meta(name, component, None);
    if let Some(labels) = metadata.labels.as_mut() {
        labels.remove(POOL_LABEL);
    }
    NetworkPolicy {
        metadata,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(ingress),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// The policies, or none when `networkPolicy.enabled` is not set.
pub(crate) fn children(
    mc: &MediaCluster,
    owner: &Owner,
    operator_namespace: Option<&str>,
) -> Vec<Child> {
    let security = &mc.spec.security;
    let Some(np) = security.network_policy.as_ref().filter(|n| n.enabled) else {
        return Vec::new();
    };
    let edges = vec![pods(edge_pods(&owner.mc))];
    let admin = admin_peers(&owner.namespace, operator_namespace);

    let mut origin_rules = vec![
        rule(&[RTMP], from(&np.publishers)),
        rule(&[RTMP, HTTP, ADMIN], Some(edges.clone())),
        rule(&[ADMIN], Some(admin.clone())),
    ];
    if mc.spec.edges.is_empty() {
        // Without edges the origins are where viewers play.
        origin_rules.push(rule(&[RTMP, HTTP], from(&np.viewers)));
    }
    let mut children = vec![Child::NetworkPolicy(policy(
        owner,
        origin_name(&owner.mc),
        Component::Origin,
        names::selector(&owner.mc, Component::Origin),
        origin_rules,
    ))];
    if !mc.spec.edges.is_empty() {
        children.push(Child::NetworkPolicy(policy(
            owner,
            edges_name(&owner.mc),
            Component::Edge(""),
            edge_pods(&owner.mc),
            vec![
                rule(&[RTMP, HTTP], from(&np.viewers)),
                // Tiered pools pull from their parent pool, clustered edges from the owner edge.
                rule(&[RTMP, HTTP, ADMIN], Some(edges)),
                rule(&[ADMIN], Some(admin)),
            ],
        )));
    }
    children
}
