//! One edge pool: Deployment, Service, headless peer Service (clustered and
//! redirect modes), ConfigMap with the wired media config, PodDisruptionBudget,
//! and an HPA when the pool scales on CPU.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Volume, VolumeMount};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::media_config::{self, CACHE_DIR, DATA_DIR, HTTP_PORT, RTMP_PORT};
use super::names::{self, Component};
use super::pod::{self, PodParams};
use super::quantity;
use super::{BuildError, Child, Inputs, Owner, port};
use crate::crd::MediaCluster;
use crate::crd::v1alpha1::{Autoscaling, EdgePool, ScalingMetric};

/// Seconds an edge pod gets after SIGTERM beyond its drain period: the server
/// then tells RTMP viewers to reconnect, waits up to 10 s for connections and
/// 10 s for HTTP responses to end.
pub const TERMINATION_MARGIN_SECS: i64 = 25;

/// Replicas the pool's Deployment asks for; `None` when an autoscaler owns the
/// field (the HPA for cpu, the operator's loop for viewers and bandwidth, under
/// its own field manager), so the two writers never fight over it.
pub fn replicas(pool: &EdgePool) -> Option<i32> {
    match &pool.autoscaling {
        None => Some(pool.replicas),
        Some(_) => None,
    }
}

/// Memory an edge pod may use beyond its cache's memory tier when the spec gives no resources.
pub const EDGE_MEMORY_HEADROOM: u64 = 1 << 30;

/// The pod's terminationGracePeriodSeconds: the drain period plus the margin.
pub fn termination_grace_seconds(pool: &EdgePool) -> i64 {
    i64::from(pool.drain.seconds.max(0)) + TERMINATION_MARGIN_SECS
}

pub(crate) fn children(
    mc: &MediaCluster,
    pool: &EdgePool,
    owner: &Owner,
    inputs: &Inputs,
) -> Result<Vec<Child>, BuildError> {
    let component = Component::Edge(&pool.name);
    let name = names::edge(&owner.mc, &pool.name);
    let selector = names::selector(&owner.mc, component);
    if let Some(a) = &pool.autoscaling {
        crate::autoscale::behavior::from_spec(a.behavior.as_ref()).map_err(|source| {
            BuildError::Behavior {
                pool: pool.name.clone(),
                source,
            }
        })?;
    }
    let config = media_config::edge(mc, pool, &owner.namespace)?;

    let disk = quantity::to_bytes(&pool.cache.disk).unwrap_or(0);
    let mut volumes = vec![
        empty_dir("data", DATA_DIR, None),
        // The kubelet evicts a pod whose cache outgrows its limit: the server's bound is 80% of
        // it (media_config::cache_disk_bytes), the rest is room for downloads in flight.
        empty_dir(
            "cache",
            CACHE_DIR,
            (disk > 0).then(|| Quantity(pool.cache.disk.clone())),
        ),
    ];
    volumes.extend(super::security::edge_volumes(&mc.spec.security));
    volumes.extend(super::admin::token_volume(&mc.spec.security));
    // The memory tier of the cache lives in the pod's memory: the default limit leaves room above it.
    let default_resources = pod::default_resources(
        quantity::to_bytes(&pool.cache.memory)
            .unwrap_or(0)
            .saturating_add(EDGE_MEMORY_HEADROOM),
    );
    let mut template = pod::template(PodParams {
        labels: names::labels(&owner.mc, component, &owner.version),
        selector: selector.clone(),
        config_map: name.clone(),
        config_hash: config.hash,
        image: &mc.spec.image,
        default_tag: &inputs.default_tag,
        resources: pool.resources.as_ref().or(Some(&default_resources)),
        scheduling: pool.scheduling.as_ref(),
        volumes,
        extra_mounts: Vec::new(),
        termination_grace_seconds: termination_grace_seconds(pool),
    });
    pod::apply_overrides(&mut template, pool.pod_overrides.as_ref()).map_err(|source| {
        BuildError::PodOverrides {
            component: format!("edge pool {}", pool.name),
            source,
        }
    })?;

    let label_selector = LabelSelector {
        match_labels: Some(selector),
        ..LabelSelector::default()
    };
    let deployment = Deployment {
        metadata: owner.meta(name.clone(), component, None),
        spec: Some(DeploymentSpec {
            replicas: replicas(pool),
            selector: label_selector.clone(),
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let mut children = vec![
        Child::ConfigMap(owner.config_map(&name, component, config.yaml)),
        Child::Service(owner.service(
            name.clone(),
            component,
            Some(pool.service.annotations.clone()),
            Some(pool.service.type_.as_str()),
            false,
            vec![
                port("rtmp", pool.service.ports.rtmp),
                port("http", pool.service.ports.http),
            ],
        )),
        Child::Deployment(deployment),
        Child::PodDisruptionBudget(owner.pdb(&name, component, &label_selector)),
    ];
    if mc.spec.balancing.mode.needs_peers() {
        // Headless: peers are the pool's ready pods, by address.
        children.push(Child::Service(owner.service(
            names::edge_peers(&owner.mc, &pool.name),
            component,
            None,
            None,
            true,
            vec![
                port("rtmp", i32::from(RTMP_PORT)),
                port("http", i32::from(HTTP_PORT)),
            ],
        )));
    }
    if let Some(a) = pool
        .autoscaling
        .as_ref()
        .filter(|a| a.metric == ScalingMetric::Cpu)
    {
        children.push(Child::HorizontalPodAutoscaler(hpa(
            owner, &name, component, a,
        )));
    }
    Ok(children)
}

fn empty_dir(name: &str, path: &str, size: Option<Quantity>) -> (Volume, VolumeMount) {
    (
        Volume {
            name: name.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: size,
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
        VolumeMount {
            name: name.to_owned(),
            mount_path: path.to_owned(),
            ..VolumeMount::default()
        },
    )
}

/// CPU scaling is the HPA's job; viewers and bandwidth are the operator's own loop.
fn hpa(
    owner: &Owner,
    name: &str,
    component: Component<'_>,
    a: &Autoscaling,
) -> HorizontalPodAutoscaler {
    HorizontalPodAutoscaler {
        metadata: owner.meta(name.to_owned(), component, None),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: name.to_owned(),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(a.target),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        }),
        ..HorizontalPodAutoscaler::default()
    }
}
