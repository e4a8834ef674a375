//! The media-server pod template shared by origins and edges, and the
//! pod-override escape hatch merged over it.

use std::collections::BTreeMap;

use k8s_openapi::DeepMerge;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, LocalObjectReference, ObjectFieldSelector, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::media_config::{HTTP_PORT, RTMP_PORT};
use super::names::{CONFIG_DIR, CONFIG_FILE, CONFIG_HASH_ANNOTATION};
use crate::crd::v1alpha1::{ImageSpec, Scheduling};

/// The one container's name in every media-server pod (pod overrides merge by it).
pub const CONTAINER: &str = "media";
/// Unprivileged user and group the server runs as.
const RUN_AS: i64 = 65_532;
/// A writable /tmp on the read-only root filesystem (the server keeps its
/// files under the data and cache volumes; this is for libraries that assume /tmp).
const TMP_DIR: &str = "/tmp";
const TMP_LIMIT: &str = "64Mi";
const MIB: u64 = 1 << 20;

/// Resources when the spec gives none: a small request so pods schedule on
/// small nodes, and a memory limit well above what the server uses (GOP
/// caches, HLS windows, the edge's memory cache tier) so it only stops a
/// runaway. No CPU limit: throttling a media server stalls every viewer at once.
pub fn default_resources(memory_limit_bytes: u64) -> ResourceRequirements {
    let quantity = |s: String| Quantity(s);
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), quantity("100m".to_owned())),
            ("memory".to_owned(), quantity("128Mi".to_owned())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            quantity(format!("{}Mi", memory_limit_bytes.div_ceil(MIB))),
        )])),
        ..ResourceRequirements::default()
    }
}

/// What differs between the origin and edge pod templates.
pub struct PodParams<'a> {
    /// Labels on the pods (selector labels included).
    pub labels: BTreeMap<String, String>,
    /// Labels that select these pods (for topology spread defaults).
    pub selector: BTreeMap<String, String>,
    /// The ConfigMap holding `config.yaml`.
    pub config_map: String,
    /// Hash of the rendered config.
    pub config_hash: String,
    /// Image settings.
    pub image: &'a ImageSpec,
    /// Default image tag when the spec has none.
    pub default_tag: &'a str,
    /// Container resources.
    pub resources: Option<&'a ResourceRequirements>,
    /// Placement.
    pub scheduling: Option<&'a Scheduling>,
    /// Extra volumes and where they mount.
    pub volumes: Vec<(Volume, VolumeMount)>,
    /// Mounts of volumes that come from elsewhere (volumeClaimTemplates).
    pub extra_mounts: Vec<VolumeMount>,
    /// Time between SIGTERM and SIGKILL: long enough for the server's drain.
    pub termination_grace_seconds: i64,
}

/// Image reference `repository:tag`.
pub fn image_ref(image: &ImageSpec, default_tag: &str) -> String {
    format!(
        "{}:{}",
        image.repository,
        image.tag.as_deref().unwrap_or(default_tag)
    )
}

fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// Readiness: `/readyz` turns 503 as soon as a pod starts draining (SIGTERM), so
/// it leaves its Services while `/healthz` (liveness) stays 200 until it exits.
fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

/// Builds the pod template.
pub fn template(p: PodParams<'_>) -> PodTemplateSpec {
    let mut volumes = vec![
        Volume {
            name: "config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: p.config_map.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity(TMP_LIMIT.to_owned())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "config".to_owned(),
            mount_path: CONFIG_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "tmp".to_owned(),
            mount_path: TMP_DIR.to_owned(),
            ..VolumeMount::default()
        },
    ];
    for (volume, mount) in p.volumes.iter().cloned() {
        volumes.push(volume);
        mounts.push(mount);
    }
    mounts.extend(p.extra_mounts.iter().cloned());

    let container = container(&p, mounts);

    let scheduling = p.scheduling.cloned().unwrap_or_default();
    let spread: Vec<_> = scheduling
        .topology_spread_constraints
        .into_iter()
        .map(|mut c| {
            // A constraint without a selector would count every pod in the namespace.
            if c.label_selector.is_none() {
                c.label_selector = Some(LabelSelector {
                    match_labels: Some(p.selector.clone()),
                    ..LabelSelector::default()
                });
            }
            c
        })
        .collect();

    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(p.labels),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_owned(),
                p.config_hash,
            )])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            // The media server never talks to the API server: a pod taken
            // over through a media parser gets no credentials.
            automount_service_account_token: Some(false),
            image_pull_secrets: (!p.image.pull_secrets.is_empty()).then(|| {
                p.image
                    .pull_secrets
                    .iter()
                    .map(|name| LocalObjectReference { name: name.clone() })
                    .collect()
            }),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                fs_group: Some(RUN_AS),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            // Edges drain viewers on SIGTERM; give them time before the kill.
            termination_grace_period_seconds: Some(p.termination_grace_seconds),
            node_selector: (!scheduling.node_selector.is_empty())
                .then_some(scheduling.node_selector),
            affinity: scheduling.affinity,
            tolerations: (!scheduling.tolerations.is_empty()).then_some(scheduling.tolerations),
            topology_spread_constraints: (!spread.is_empty()).then_some(spread),
            ..PodSpec::default()
        }),
    }
}

fn container(p: &PodParams<'_>, mounts: Vec<VolumeMount>) -> Container {
    Container {
        name: CONTAINER.to_owned(),
        image: Some(image_ref(p.image, p.default_tag)),
        image_pull_policy: p.image.pull_policy.map(|pp| pp.as_str().to_owned()),
        args: Some(vec![
            "--config".to_owned(),
            format!("{CONFIG_DIR}/{CONFIG_FILE}"),
        ]),
        ports: Some(vec![
            ContainerPort {
                name: Some("rtmp".to_owned()),
                container_port: i32::from(RTMP_PORT),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("http".to_owned()),
                container_port: i32::from(HTTP_PORT),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
            // `/api/*` and `/metrics`: on no Service (cluster-internal).
            ContainerPort {
                name: Some("admin".to_owned()),
                container_port: i32::from(super::admin::ADMIN_PORT),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
        ]),
        env: Some(vec![
            env_field("POD_NAME", "metadata.name"),
            env_field("POD_NAMESPACE", "metadata.namespace"),
            env_field("POD_IP", "status.podIP"),
        ]),
        readiness_probe: Some(probe("/readyz", 5, 2)),
        liveness_probe: Some(probe("/healthz", 10, 6)),
        resources: p.resources.cloned(),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// Merges a user's partial PodTemplateSpec over the generated one: maps and
/// scalars are overwritten, containers/volumes/env merge by name.
pub fn apply_overrides(
    template: &mut PodTemplateSpec,
    overrides: Option<&serde_json::Value>,
) -> Result<(), serde_json::Error> {
    let Some(value) = overrides else {
        return Ok(());
    };
    let mut value = value.clone();
    // PodSpec requires `containers`; an override that only touches other fields may omit it.
    if let Some(spec) = value
        .get_mut("spec")
        .and_then(serde_json::Value::as_object_mut)
    {
        spec.entry("containers")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    }
    let overrides: PodTemplateSpec = serde_json::from_value(value)?;
    template.merge_from(overrides);
    Ok(())
}
