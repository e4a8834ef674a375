//! `spec.security` in the pods: the Secrets mounted read-only into origins
//! and edges, and the `auth` section of the media config that points at them.
//! Secrets are only named here; the operator never reads them.

use std::path::PathBuf;

use fleetcast_media::config::{AuthConfig, WebhookConfig};
use k8s_openapi::api::core::v1::{KeyToPath, SecretVolumeSource, Volume, VolumeMount};

use crate::crd::v1alpha1::{SecuritySpec, WebhookSpec};

/// Where the publish keys Secret is mounted whole (files `APP.NAME` and `APP`).
pub const PUBLISH_KEYS_DIR: &str = "/etc/fleetcast/publish-keys";
/// Where the playback signing Secret's key is mounted.
pub const PLAY_SIGNING_DIR: &str = "/etc/fleetcast/play-signing";
/// File name of the signing secret inside [`PLAY_SIGNING_DIR`].
pub const PLAY_SIGNING_FILE: &str = "secret";
/// Mode of mounted Secret files: owner and group (the pod's fsGroup) read, nobody else.
pub const SECRET_MODE: i32 = 0o440;

/// A read-only Secret volume; `items` picks keys (all keys when `None`).
pub fn secret_volume(
    volume: &str,
    secret: &str,
    items: Option<Vec<KeyToPath>>,
    mount_path: &str,
) -> (Volume, VolumeMount) {
    (
        Volume {
            name: volume.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.to_owned()),
                items,
                default_mode: Some(SECRET_MODE),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        VolumeMount {
            name: volume.to_owned(),
            mount_path: mount_path.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    )
}

fn signing_volume(security: &SecuritySpec) -> Option<(Volume, VolumeMount)> {
    security.playback_signing.as_ref().map(|s| {
        secret_volume(
            "play-signing",
            &s.secret_name,
            Some(vec![KeyToPath {
                key: s.key.clone(),
                path: PLAY_SIGNING_FILE.to_owned(),
                mode: None,
            }]),
            PLAY_SIGNING_DIR,
        )
    })
}

/// Secret volumes of the origins: publish keys (whole Secret) and the signing secret.
pub fn origin_volumes(security: &SecuritySpec) -> Vec<(Volume, VolumeMount)> {
    let keys = security
        .publish_keys
        .as_ref()
        .map(|k| secret_volume("publish-keys", &k.secret_name, None, PUBLISH_KEYS_DIR));
    keys.into_iter().chain(signing_volume(security)).collect()
}

/// Secret volumes of the edges: the signing secret (edges verify viewers and
/// sign their own upstream requests with it).
pub fn edge_volumes(security: &SecuritySpec) -> Vec<(Volume, VolumeMount)> {
    signing_volume(security).into_iter().collect()
}

fn webhook(w: &WebhookSpec) -> WebhookConfig {
    WebhookConfig {
        url: w.url.clone(),
        timeout_ms: u64::from(w.timeout_ms),
    }
}

/// Play-side auth, the same on origins and edges.
fn play(security: &SecuritySpec, auth: &mut AuthConfig) {
    if let Some(s) = &security.playback_signing {
        auth.play_signing_secret_file =
            Some(PathBuf::from(PLAY_SIGNING_DIR).join(PLAY_SIGNING_FILE));
        auth.play_signing_bind_addr = s.bind_client_address;
    }
    auth.play_webhook = security.play_webhook.as_ref().map(webhook);
}

/// Sets the origin's publish and play auth from the spec (values are copied
/// into typed fields; serialization quotes them).
pub fn origin_auth(security: &SecuritySpec, auth: &mut AuthConfig) {
    if security.publish_keys.is_some() {
        auth.publish_keys_dir = Some(PathBuf::from(PUBLISH_KEYS_DIR));
    }
    auth.publish_webhook = security.publish_webhook.as_ref().map(webhook);
    auth.allow_takeover = security.allow_takeover;
    play(security, auth);
}

/// Sets the edge's play auth from the spec.
pub fn edge_auth(security: &SecuritySpec, auth: &mut AuthConfig) {
    play(security, auth);
}
