//! The media servers' admin port: its container port, and the Secret key of
//! `spec.security.adminToken` mounted into origins and edges and named in
//! their config as `admin.token_file`.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{KeyToPath, Volume, VolumeMount};

use crate::crd::v1alpha1::SecuritySpec;

/// The admin port (`/api/*`, `/metrics`), on no Service.
pub const ADMIN_PORT: u16 = fleetcast_media::config::DEFAULT_ADMIN_PORT;
/// Where the token's Secret key is mounted.
pub const TOKEN_DIR: &str = "/etc/fleetcast/admin";
/// The file in [`TOKEN_DIR`].
pub const TOKEN_FILE: &str = "token";
const VOLUME: &str = "admin-token";

/// `admin.token_file` of the media config, when a token is configured.
pub fn token_file(security: &SecuritySpec) -> Option<PathBuf> {
    security
        .admin_token
        .as_ref()
        .map(|_| PathBuf::from(TOKEN_DIR).join(TOKEN_FILE))
}

/// The token's volume and mount, when a token is configured: the one key,
/// as [`TOKEN_FILE`] in a directory mount (a `subPath` mount would never
/// see the Secret change).
pub fn token_volume(security: &SecuritySpec) -> Option<(Volume, VolumeMount)> {
    let token = security.admin_token.as_ref()?;
    Some(super::security::secret_volume(
        VOLUME,
        &token.secret_name,
        Some(vec![KeyToPath {
            key: token.key.clone(),
            path: TOKEN_FILE.to_owned(),
            mode: None,
        }]),
        TOKEN_DIR,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::v1alpha1::AdminToken;

    #[test]
    fn nothing_without_a_token() {
        let none = SecuritySpec::default();
        assert_eq!(token_file(&none), None);
        assert!(token_volume(&none).is_none());
    }

    #[test]
    fn the_secret_key_becomes_the_token_file() {
        let security = SecuritySpec {
            admin_token: Some(AdminToken {
                secret_name: "media-admin".into(),
                key: "api-token".into(),
            }),
            ..SecuritySpec::default()
        };
        assert_eq!(
            token_file(&security),
            Some(PathBuf::from("/etc/fleetcast/admin/token"))
        );
        let (volume, mount) = token_volume(&security).unwrap();
        let secret = volume.secret.unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("media-admin"));
        assert_eq!(secret.default_mode, Some(0o440));
        let items = secret.items.unwrap();
        assert_eq!(items[0].key, "api-token");
        assert_eq!(items[0].path, "token");
        assert_eq!(mount.mount_path, "/etc/fleetcast/admin");
        assert_eq!(mount.read_only, Some(true));
        assert_eq!(mount.sub_path, None, "a subPath mount never sees rotations");
        assert_eq!(volume.name, mount.name);
    }

    /// The whole cluster built with a token: both roles listen on the admin
    /// port, name the mounted file, and no Service carries the admin port.
    #[test]
    fn origins_and_edges_get_the_admin_port_and_the_token() {
        use fleetcast_media::config::Config;

        use crate::build::{Child, Inputs, Kind, desired};
        use crate::crd::MediaCluster;
        use crate::crd::v1alpha1::{EdgePool, MediaClusterSpec};

        let spec = MediaClusterSpec {
            edges: vec![EdgePool::named("london")],
            security: SecuritySpec {
                admin_token: Some(AdminToken {
                    secret_name: "media-admin".into(),
                    key: "token".into(),
                }),
                ..SecuritySpec::default()
            },
            ..MediaClusterSpec::default()
        };
        let mut mc = MediaCluster::new("live", spec);
        mc.metadata.namespace = Some("video".into());
        mc.metadata.uid = Some("6f0c1d2e-0000-4000-8000-000000000001".into());
        let inputs = Inputs {
            default_tag: "0.1.0".into(),
            operator_namespace: None,
        };
        let d = desired(&mc, &inputs).unwrap();
        for name in ["live-origin", "live-edge-london"] {
            let Some(Child::ConfigMap(cm)) = d.get(Kind::ConfigMap, name) else {
                panic!("no ConfigMap {name}");
            };
            let config = Config::from_yaml_str(&cm.data.as_ref().unwrap()["config.yaml"]).unwrap();
            assert_eq!(config.admin.listen.port(), 8081, "{name}");
            assert_eq!(
                config.admin.token_file.as_deref(),
                Some(std::path::Path::new("/etc/fleetcast/admin/token")),
                "{name}"
            );
            if let Some(edge) = &config.edge {
                assert_eq!(edge.upstream_admin_port, 8081);
            }
        }
        for child in &d.children {
            let template = match child {
                Child::Deployment(o) => o.spec.clone().unwrap().template,
                Child::StatefulSet(o) => o.spec.clone().unwrap().template,
                Child::Service(svc) => {
                    let ports = svc.spec.as_ref().unwrap().ports.clone().unwrap_or_default();
                    assert!(
                        ports
                            .iter()
                            .all(|p| p.port != 8081 && p.name.as_deref() != Some("admin")),
                        "Service {:?} exposes the admin port",
                        svc.metadata.name
                    );
                    continue;
                }
                _ => continue,
            };
            let pod = template.spec.unwrap();
            let container = &pod.containers[0];
            let admin = container
                .ports
                .as_ref()
                .unwrap()
                .iter()
                .find(|p| p.name.as_deref() == Some("admin"))
                .expect("container port admin");
            assert_eq!(admin.container_port, 8081);
            let mount = container
                .volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .find(|m| m.mount_path == TOKEN_DIR)
                .expect("token mounted");
            assert!(
                pod.volumes
                    .unwrap()
                    .iter()
                    .any(|v| v.name == mount.name && v.secret.is_some())
            );
            // Probes stay on the public port, which still serves them.
            let ready = container.readiness_probe.as_ref().unwrap();
            let port = &ready.http_get.as_ref().unwrap().port;
            assert_eq!(
                *port,
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into())
            );
        }
        // Without a token nothing is mounted and the config names no file.
        let mut open = mc.clone();
        open.spec.security = SecuritySpec::default();
        let d = desired(&open, &inputs).unwrap();
        let Some(Child::ConfigMap(cm)) = d.get(Kind::ConfigMap, "live-origin") else {
            panic!("no origin ConfigMap");
        };
        let config = Config::from_yaml_str(&cm.data.as_ref().unwrap()["config.yaml"]).unwrap();
        assert_eq!(config.admin.token_file, None);
        assert_eq!(config.admin.listen.port(), 8081);
    }
}
