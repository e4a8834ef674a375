//! The origins: a Deployment (no per-pod state) or a StatefulSet (a volume per
//! origin), their headless Service (edges resolve it to every origin pod), the
//! ingest Service, their config and PodDisruptionBudget.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, KeyToPath, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodTemplateSpec, SecretVolumeSource, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::media_config::{self, DATA_DIR, HTTP_PORT, RTMP_PORT};
use super::names::{self, Component};
use super::pod::{self, PodParams};
use super::{BuildError, Child, Inputs, Owner, port};
use crate::crd::MediaCluster;
use crate::crd::v1alpha1::{OriginSpec, SecuritySpec, StorageType};

/// Where the publish credential is mounted.
pub const AUTH_DIR: &str = "/etc/fleetcast/auth";
/// Seconds between SIGTERM and SIGKILL for an origin (publishers reconnect elsewhere).
pub const ORIGIN_TERMINATION_GRACE_SECS: i64 = 30;
/// Memory limit of an origin pod when the spec gives no resources.
pub const ORIGIN_MEMORY_LIMIT: u64 = 2 << 30;
/// File name of the publish credential inside [`AUTH_DIR`].
pub const AUTH_FILE: &str = "publish-token";

pub(crate) fn children(
    mc: &MediaCluster,
    owner: &Owner,
    inputs: &Inputs,
) -> Result<Vec<Child>, BuildError> {
    let spec = &mc.spec.origin;
    let name = names::origin(&owner.mc);
    let selector = names::selector(&owner.mc, Component::Origin);
    let config = media_config::origin(mc)?;
    let (volumes, extra_mounts) = volumes(spec, &mc.spec.security);

    let default_resources = pod::default_resources(ORIGIN_MEMORY_LIMIT);
    let mut template = pod::template(PodParams {
        labels: names::labels(&owner.mc, Component::Origin, &owner.version),
        selector: selector.clone(),
        config_map: name.clone(),
        config_hash: config.hash,
        image: &mc.spec.image,
        default_tag: &inputs.default_tag,
        resources: spec.resources.as_ref().or(Some(&default_resources)),
        scheduling: spec.scheduling.as_ref(),
        volumes,
        extra_mounts,
        termination_grace_seconds: ORIGIN_TERMINATION_GRACE_SECS,
    });
    pod::apply_overrides(&mut template, spec.pod_overrides.as_ref()).map_err(|source| {
        BuildError::PodOverrides {
            component: "origin".to_owned(),
            source,
        }
    })?;
    let label_selector = LabelSelector {
        match_labels: Some(selector),
        ..LabelSelector::default()
    };

    let media_ports = || {
        vec![
            port("rtmp", i32::from(RTMP_PORT)),
            port("http", i32::from(HTTP_PORT)),
        ]
    };
    Ok(vec![
        Child::ConfigMap(owner.config_map(&name, Component::Origin, config.yaml)),
        Child::Service(owner.service(
            name.clone(),
            Component::Origin,
            None,
            None,
            true,
            media_ports(),
        )),
        Child::Service(owner.service(
            names::ingest(&owner.mc),
            Component::Origin,
            Some(spec.ingest.annotations.clone()),
            Some(spec.ingest.type_.as_str()),
            false,
            vec![port("rtmp", spec.ingest.rtmp_port)],
        )),
        workload(spec, owner, &name, &label_selector, template),
        Child::PodDisruptionBudget(owner.pdb(&name, Component::Origin, &label_selector)),
    ])
}

/// The data volume (unless a claim template provides it) and the publish credential.
fn volumes(
    spec: &OriginSpec,
    security: &SecuritySpec,
) -> (Vec<(Volume, VolumeMount)>, Vec<VolumeMount>) {
    let data_mount = VolumeMount {
        name: "data".to_owned(),
        mount_path: DATA_DIR.to_owned(),
        ..VolumeMount::default()
    };
    let data = |source: Volume| (source, data_mount.clone());
    let mut volumes = Vec::new();
    let mut extra_mounts = Vec::new();
    match spec.storage.type_ {
        StorageType::None => volumes.push(data(Volume {
            name: "data".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        })),
        StorageType::Shared => volumes.push(data(Volume {
            name: "data".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: spec.storage.claim_name.clone().unwrap_or_default(),
                read_only: None,
            }),
            ..Volume::default()
        })),
        StorageType::PerOrigin => extra_mounts.push(data_mount.clone()),
    }
    if let Some(auth) = &spec.publish_auth {
        volumes.push((
            Volume {
                name: "publish-auth".to_owned(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(auth.name.clone()),
                    items: Some(vec![KeyToPath {
                        key: auth.key.clone(),
                        path: AUTH_FILE.to_owned(),
                        mode: None,
                    }]),
                    default_mode: Some(super::security::SECRET_MODE),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
            VolumeMount {
                name: "publish-auth".to_owned(),
                mount_path: AUTH_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ));
    }
    volumes.extend(super::security::origin_volumes(security));
    volumes.extend(super::admin::token_volume(security));
    (volumes, extra_mounts)
}

/// A Deployment, or a StatefulSet with a claim template when each origin gets its own volume.
fn workload(
    spec: &OriginSpec,
    owner: &Owner,
    name: &str,
    selector: &LabelSelector,
    template: PodTemplateSpec,
) -> Child {
    let metadata = owner.meta(name.to_owned(), Component::Origin, None);
    if spec.storage.type_ != StorageType::PerOrigin {
        return Child::Deployment(Deployment {
            metadata,
            spec: Some(DeploymentSpec {
                replicas: Some(spec.replicas),
                selector: selector.clone(),
                template,
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        });
    }
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".to_owned()),
            labels: selector.match_labels.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(spec.storage.size.clone().unwrap_or_default()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    Child::StatefulSet(StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            selector: selector.clone(),
            service_name: Some(name.to_owned()),
            // Origins do not depend on each other: start and stop them together.
            pod_management_policy: Some("Parallel".to_owned()),
            template,
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    })
}
