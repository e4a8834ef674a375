//! Watch caches of the children, filtered to objects this operator manages,
//! trimmed to what reconcile reads (workload status; others by metadata only)
//! to keep memory low with many clusters.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::status::{Observed, Workload};
use crate::build::{ChildKey, Kind, names};
use crate::crd::MediaCluster;

/// The caches reconcile reads.
#[derive(Clone)]
pub struct Stores {
    /// Deployments (status kept, pod template dropped).
    pub deployments: Store<Deployment>,
    /// StatefulSets (status kept, pod template dropped).
    pub statefulsets: Store<StatefulSet>,
    /// Services, metadata only.
    pub services: Store<PartialObjectMeta<Service>>,
    /// ConfigMaps, metadata only.
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    /// PDBs, metadata only.
    pub pdbs: Store<PartialObjectMeta<PodDisruptionBudget>>,
    /// HPAs, metadata only.
    pub hpas: Store<PartialObjectMeta<HorizontalPodAutoscaler>>,
    /// NetworkPolicies, metadata only.
    pub network_policies: Store<PartialObjectMeta<NetworkPolicy>>,
}

fn owned_by<K: Resource>(obj: &K, namespace: &str, uid: &str) -> bool {
    obj.meta().namespace.as_deref() == Some(namespace)
        && obj
            .owner_references()
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true))
}

fn keys_of<K: Resource + Clone>(
    store: &Store<K>,
    kind: Kind,
    namespace: &str,
    uid: &str,
    out: &mut Vec<(ChildKey, Option<String>)>,
) where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    for obj in store.state() {
        if owned_by(obj.as_ref(), namespace, uid) {
            out.push((
                ChildKey {
                    kind,
                    name: obj.name_any(),
                },
                super::apply::change_marker(obj.meta()),
            ));
        }
    }
}

impl Stores {
    /// Every cached child the MediaCluster controls, with its change marker.
    pub fn owned(&self, mc: &MediaCluster) -> Vec<(ChildKey, Option<String>)> {
        let (Some(namespace), Some(uid)) =
            (mc.metadata.namespace.as_deref(), mc.metadata.uid.as_deref())
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        keys_of(&self.config_maps, Kind::ConfigMap, namespace, uid, &mut out);
        keys_of(&self.services, Kind::Service, namespace, uid, &mut out);
        keys_of(
            &self.deployments,
            Kind::Deployment,
            namespace,
            uid,
            &mut out,
        );
        keys_of(
            &self.statefulsets,
            Kind::StatefulSet,
            namespace,
            uid,
            &mut out,
        );
        keys_of(
            &self.pdbs,
            Kind::PodDisruptionBudget,
            namespace,
            uid,
            &mut out,
        );
        keys_of(
            &self.hpas,
            Kind::HorizontalPodAutoscaler,
            namespace,
            uid,
            &mut out,
        );
        keys_of(
            &self.network_policies,
            Kind::NetworkPolicy,
            namespace,
            uid,
            &mut out,
        );
        out
    }

    /// The workloads of the MediaCluster as cached.
    pub fn workloads(&self, mc: &MediaCluster) -> Observed {
        let namespace = mc.metadata.namespace.clone().unwrap_or_default();
        let uid = mc.metadata.uid.clone().unwrap_or_default();
        let name = mc.name_any();
        let deployment = |n: &str| {
            self.deployments
                .get(&ObjectRef::new(n).within(&namespace))
                .filter(|d| owned_by(d.as_ref(), &namespace, &uid))
                .map(|d| Workload::from(d.as_ref()))
        };
        let origin_name = names::origin(&name);
        let origin = deployment(&origin_name).or_else(|| {
            self.statefulsets
                .get(&ObjectRef::new(&origin_name).within(&namespace))
                .filter(|s| owned_by(s.as_ref(), &namespace, &uid))
                .map(|s| Workload::from(s.as_ref()))
        });
        Observed {
            origin,
            pools: mc
                .spec
                .edges
                .iter()
                .map(|p| (p.name.clone(), deployment(&names::edge(&name, &p.name))))
                .collect(),
        }
    }

    /// Waits until every cache has its first full list.
    pub async fn ready(&self) -> bool {
        self.deployments.wait_until_ready().await.is_ok()
            && self.statefulsets.wait_until_ready().await.is_ok()
            && self.services.wait_until_ready().await.is_ok()
            && self.config_maps.wait_until_ready().await.is_ok()
            && self.pdbs.wait_until_ready().await.is_ok()
            && self.hpas.wait_until_ready().await.is_ok()
            && self.network_policies.wait_until_ready().await.is_ok()
    }
}

/// Drops what reconcile never reads from a cached Deployment.
pub fn trim_deployment(d: &mut Deployment) {
    d.managed_fields_mut().clear();
    if let Some(spec) = d.spec.as_mut() {
        spec.template.spec = None;
        spec.template.metadata = None;
    }
}

/// Drops what reconcile never reads from a cached StatefulSet.
pub fn trim_statefulset(s: &mut StatefulSet) {
    s.managed_fields_mut().clear();
    if let Some(spec) = s.spec.as_mut() {
        spec.template.spec = None;
        spec.template.metadata = None;
        spec.volume_claim_templates = None;
    }
}

/// Keeps of a cached edge pod only what the autoscaler reads: name, labels,
/// the deletion-cost annotation, whether it is terminating, phase and address.
pub fn trim_pod(p: &mut k8s_openapi::api::core::v1::Pod) {
    p.managed_fields_mut().clear();
    p.spec = None;
    if let Some(annotations) = p.metadata.annotations.as_mut() {
        annotations.retain(|k, _| k == crate::autoscale::pods::DELETION_COST_ANNOTATION);
    }
    if let Some(status) = p.status.take() {
        p.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: status.phase,
            pod_ip: status.pod_ip,
            ..Default::default()
        });
    }
}

/// Drops managed fields from cached metadata.
pub fn trim_meta<K>(m: &mut PartialObjectMeta<K>) {
    m.metadata.managed_fields = None;
    m.metadata.annotations = None;
}
