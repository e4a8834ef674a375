//! Tests of `spec.security` in the built objects: Secret volumes and mounts,
//! the rendered auth config, the pods' security context and resources, the
//! NetworkPolicies, and that hostile strings cannot change the rendered config.

use fleetcast_media::config::Config;
use k8s_openapi::api::core::v1::{PodSpec, Volume};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::security::{PLAY_SIGNING_DIR, PUBLISH_KEYS_DIR, SECRET_MODE};
use super::*;
use crate::crd::v1alpha1::{
    EdgePool, MediaClusterSpec, NetworkPolicySpec, PlaybackSigning, PublishKeys, SecuritySpec,
    WebhookSpec,
};

const NS: &str = "video";

fn cluster(name: &str, spec: MediaClusterSpec) -> MediaCluster {
    let mut mc = MediaCluster::new(name, spec);
    mc.metadata.namespace = Some(NS.to_owned());
    mc.metadata.uid = Some("6f0c1d2e-0000-4000-8000-000000000002".to_owned());
    mc
}

fn inputs() -> Inputs {
    Inputs {
        default_tag: "0.1.0".to_owned(),
        operator_namespace: Some("fleetcast-system".to_owned()),
    }
}

fn hook(url: &str) -> WebhookSpec {
    WebhookSpec {
        url: url.to_owned(),
        timeout_ms: 1500,
    }
}

fn secured(network_policy: Option<NetworkPolicySpec>) -> MediaClusterSpec {
    MediaClusterSpec {
        edges: vec![EdgePool::named("london")],
        security: SecuritySpec {
            publish_keys: Some(PublishKeys {
                secret_name: "stream-keys".to_owned(),
            }),
            publish_webhook: Some(hook("http://auth.video.svc/publish")),
            allow_takeover: true,
            playback_signing: Some(PlaybackSigning {
                secret_name: "play-signing".to_owned(),
                key: "hmac".to_owned(),
                bind_client_address: true,
            }),
            play_webhook: Some(hook("http://auth.example/play")),
            network_policy,
            ..SecuritySpec::default()
        },
        ..MediaClusterSpec::default()
    }
}

fn pod_spec(d: &Desired, name: &str) -> PodSpec {
    match d.get(Kind::Deployment, name) {
        Some(Child::Deployment(o)) => o.spec.clone().unwrap().template.spec.unwrap(),
        other => panic!("no Deployment {name}: {other:?}"),
    }
}

fn config(d: &Desired, name: &str) -> Config {
    let Some(Child::ConfigMap(cm)) = d.get(Kind::ConfigMap, name) else {
        panic!("no ConfigMap {name}");
    };
    Config::from_yaml_str(&cm.data.as_ref().unwrap()["config.yaml"]).unwrap()
}

/// The mount path of a volume in the media container, and whether it is read-only.
fn mount(spec: &PodSpec, volume: &str) -> Option<(String, bool)> {
    spec.containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == volume)
        .map(|m| (m.mount_path.clone(), m.read_only == Some(true)))
}

fn volume<'a>(spec: &'a PodSpec, name: &str) -> &'a Volume {
    spec.volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

#[test]
fn secrets_are_mounted_read_only_where_the_config_points() {
    let d = desired(&cluster("live", secured(None)), &inputs()).unwrap();

    let origin = pod_spec(&d, "live-origin");
    let keys = volume(&origin, "publish-keys").secret.clone().unwrap();
    assert_eq!(keys.secret_name.as_deref(), Some("stream-keys"));
    assert_eq!(keys.items, None, "the whole Secret: one file per stream");
    assert_eq!(keys.default_mode, Some(SECRET_MODE));
    assert_eq!(
        mount(&origin, "publish-keys"),
        Some((PUBLISH_KEYS_DIR.to_owned(), true))
    );
    for spec in [&origin, &pod_spec(&d, "live-edge-london")] {
        let signing = volume(spec, "play-signing").secret.clone().unwrap();
        assert_eq!(signing.secret_name.as_deref(), Some("play-signing"));
        assert_eq!(signing.default_mode, Some(SECRET_MODE));
        let items = signing.items.unwrap();
        assert_eq!(
            (items[0].key.as_str(), items[0].path.as_str()),
            ("hmac", "secret")
        );
        assert_eq!(
            mount(spec, "play-signing"),
            Some((PLAY_SIGNING_DIR.to_owned(), true))
        );
    }
    assert_eq!(
        mount(&pod_spec(&d, "live-edge-london"), "publish-keys"),
        None,
        "edges take no ingest"
    );

    let auth = config(&d, "live-origin").auth;
    assert_eq!(
        auth.publish_keys_dir.as_deref(),
        Some(std::path::Path::new("/etc/fleetcast/publish-keys"))
    );
    let publish = auth.publish_webhook.unwrap();
    assert_eq!(
        (publish.url.as_str(), publish.timeout_ms),
        ("http://auth.video.svc/publish", 1500)
    );
    assert!(auth.allow_takeover);
    for auth in [auth_of(&d, "live-origin"), auth_of(&d, "live-edge-london")] {
        assert_eq!(
            auth.play_signing_secret_file.as_deref(),
            Some(std::path::Path::new("/etc/fleetcast/play-signing/secret"))
        );
        assert!(auth.play_signing_bind_addr);
        assert_eq!(auth.play_webhook.unwrap().url, "http://auth.example/play");
    }
    let edge = auth_of(&d, "live-edge-london");
    assert_eq!(
        (edge.publish_keys_dir, edge.publish_webhook),
        (None, None),
        "publishing is the origins' business"
    );
}

fn auth_of(d: &Desired, name: &str) -> fleetcast_media::config::AuthConfig {
    config(d, name).auth
}

#[test]
fn without_security_the_config_has_no_auth_and_no_policy() {
    let spec = MediaClusterSpec {
        edges: vec![EdgePool::named("london")],
        ..MediaClusterSpec::default()
    };
    let d = desired(&cluster("live", spec), &inputs()).unwrap();
    assert_eq!(
        config(&d, "live-origin").auth,
        fleetcast_media::config::AuthConfig::default()
    );
    assert!(d.children.iter().all(|c| c.kind() != Kind::NetworkPolicy));
    let origin = pod_spec(&d, "live-origin");
    assert!(mount(&origin, "publish-keys").is_none() && mount(&origin, "play-signing").is_none());
}

#[test]
fn pods_are_locked_down_and_every_written_path_is_a_volume() {
    let d = desired(&cluster("live", secured(None)), &inputs()).unwrap();
    for name in ["live-origin", "live-edge-london"] {
        let spec = pod_spec(&d, name);
        assert_eq!(spec.automount_service_account_token, Some(false), "{name}");
        let pod = spec.security_context.clone().unwrap();
        assert_eq!(pod.run_as_non_root, Some(true), "{name}");
        assert_eq!(
            pod.seccomp_profile.unwrap().type_,
            "RuntimeDefault",
            "{name}"
        );
        let c = &spec.containers[0];
        let sc = c.security_context.clone().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
        assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"], "{name}");
        // Where the server writes: its data dir (VOD, recordings), the edge cache, /tmp.
        let cfg = config(&d, name);
        let mut written = vec![cfg.data_dir.display().to_string(), "/tmp".to_owned()];
        if let Some(edge) = &cfg.edge {
            written.push(edge.cache.dir.display().to_string());
        }
        for path in written {
            let m = c
                .volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .find(|m| m.mount_path == path)
                .unwrap_or_else(|| panic!("{name}: nothing writable mounted at {path}"));
            assert_ne!(m.read_only, Some(true), "{name}: {path}");
        }
        let res = c.resources.clone().unwrap();
        assert!(res.limits.unwrap().contains_key("memory"), "{name}");
        assert!(res.requests.unwrap().contains_key("cpu"), "{name}");
    }
    // The default edge limit leaves a GiB above the cache's memory tier (256Mi).
    let edge = pod_spec(&d, "live-edge-london").containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(edge.limits.unwrap()["memory"].0, "1280Mi");
}

#[test]
fn resources_in_the_spec_replace_the_defaults() {
    let mut spec = secured(None);
    let given: k8s_openapi::api::core::v1::ResourceRequirements =
        serde_json::from_value(serde_json::json!({"requests": {"cpu": "2"}})).unwrap();
    spec.origin.resources = Some(given.clone());
    let d = desired(&cluster("live", spec), &inputs()).unwrap();
    assert_eq!(
        pod_spec(&d, "live-origin").containers[0].resources,
        Some(given)
    );
}

fn policy(d: &Desired, name: &str) -> NetworkPolicy {
    match d.get(Kind::NetworkPolicy, name) {
        Some(Child::NetworkPolicy(p)) => p.clone(),
        other => panic!("no NetworkPolicy {name}: {other:?}"),
    }
}

/// (port names, from) of each ingress rule.
fn rules(p: &NetworkPolicy) -> Vec<(Vec<String>, Option<Vec<NetworkPolicyPeer>>)> {
    p.spec
        .clone()
        .unwrap()
        .ingress
        .unwrap()
        .into_iter()
        .map(|r| {
            let ports = r
                .ports
                .unwrap()
                .into_iter()
                .map(|p| match p.port {
                    Some(IntOrString::String(s)) => s,
                    other => panic!("{other:?}"),
                })
                .collect();
            (ports, r.from)
        })
        .collect()
}

fn cidr(block: &str) -> NetworkPolicyPeer {
    serde_json::from_value(serde_json::json!({"ipBlock": {"cidr": block}})).unwrap()
}

#[test]
fn network_policy_lets_publishers_reach_ingest_and_viewers_the_edges() {
    let publishers = vec![cidr("203.0.113.0/24")];
    let viewers = vec![cidr("198.51.100.0/24")];
    let spec = secured(Some(NetworkPolicySpec {
        enabled: true,
        publishers: publishers.clone(),
        viewers: viewers.clone(),
    }));
    let mc = cluster("live", spec);
    let d = desired(&mc, &inputs()).unwrap();

    let edges = serde_json::json!([{"podSelector": {"matchLabels": {
        "app.kubernetes.io/component": "edge",
        "app.kubernetes.io/instance": "live",
        "app.kubernetes.io/name": "fleetcast-media",
    }}}]);
    let edges: Vec<NetworkPolicyPeer> = serde_json::from_value(edges).unwrap();
    let admin: Vec<NetworkPolicyPeer> = serde_json::from_value(serde_json::json!([
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "fleetcast-system"}}},
    ]))
    .unwrap();
    let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    let origin = policy(&d, "live-origin");
    assert_eq!(
        origin.spec.clone().unwrap().pod_selector,
        Some(LabelSelector {
            match_labels: Some(names::selector("live", names::Component::Origin)),
            ..LabelSelector::default()
        })
    );
    assert_eq!(
        origin.spec.clone().unwrap().policy_types,
        Some(vec!["Ingress".to_owned()])
    );
    assert_eq!(
        rules(&origin),
        vec![
            (s(&["rtmp"]), Some(publishers)),
            (s(&["rtmp", "http", "admin"]), Some(edges.clone())),
            (s(&["admin"]), Some(admin.clone())),
        ]
    );
    let edge = policy(&d, "live-edges");
    assert_eq!(
        rules(&edge),
        vec![
            (s(&["rtmp", "http"]), Some(viewers)),
            (s(&["rtmp", "http", "admin"]), Some(edges)),
            (s(&["admin"]), Some(admin)),
        ]
    );
    // Owned like every other child, so pruning and garbage collection find it.
    assert_eq!(
        origin.metadata.owner_references.unwrap()[0].uid,
        mc.metadata.uid.clone().unwrap()
    );
    assert_eq!(
        origin.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
        names::MANAGER
    );
}

#[test]
fn network_policy_empty_lists_mean_anywhere_and_origins_serve_viewers_without_edges() {
    let mut spec = secured(Some(NetworkPolicySpec {
        enabled: true,
        ..NetworkPolicySpec::default()
    }));
    spec.edges.clear();
    let d = desired(&cluster("solo", spec), &inputs()).unwrap();
    let origin = rules(&policy(&d, "solo-origin"));
    assert_eq!(origin[0], (vec!["rtmp".to_owned()], None));
    assert_eq!(
        origin.last().unwrap(),
        &(vec!["rtmp".to_owned(), "http".to_owned()], None)
    );
    assert!(d.get(Kind::NetworkPolicy, "solo-edges").is_none());

    let disabled = secured(Some(NetworkPolicySpec::default()));
    let d = desired(&cluster("off", disabled), &inputs()).unwrap();
    assert!(d.children.iter().all(|c| c.kind() != Kind::NetworkPolicy));
}

/// Strings a user (or an attacker who can write a MediaCluster) might put in
/// the spec to break out of a YAML scalar.
const HOSTILE: &[&str] = &[
    "http://h/x\nauth:\n  allow_takeover: true",
    "http://h/\"quoted\" and 'single'",
    "http://h/a: b",
    "http://h/#comment",
    "http://h/{flow: map}",
    "http://h/[1, 2]",
    "http://h/&anchor *alias",
    "http://h/!!binary aGVsbG8=",
    "http://h/ !tag value",
    "http://h/\r\n---\nrole: edge",
    "http://h/\u{0}\u{7}\u{1b}[31m",
    "http://h/%YAML 1.1",
    "http://h/... | > ? - ,",
];

/// Every string the operator copies from the spec into the media config, set
/// to `hostile`: rendered, parsed back with the server's own type, equal.
#[test]
fn hostile_strings_cannot_change_the_rendered_config() {
    let d = desired(&cluster("live", secured(None)), &inputs()).unwrap();
    for name in ["live-origin", "live-edge-london"] {
        let baseline = config(&d, name);
        for &hostile in HOSTILE {
            let mut c = baseline.clone();
            c.auth.publish_webhook = Some(fleetcast_media::config::WebhookConfig {
                url: hostile.to_owned(),
                timeout_ms: 1,
            });
            c.auth.play_webhook = Some(fleetcast_media::config::WebhookConfig {
                url: format!("{hostile}#play"),
                timeout_ms: 2,
            });
            if let Some(edge) = c.edge.as_mut() {
                edge.upstreams = vec![hostile.to_owned(), format!("rtmp://{hostile}:1935")];
                edge.balancing.peer_service = Some(hostile.to_owned());
                edge.balancing.advertise = Some(format!("{hostile}:8080"));
            }
            let rendered = media_config::render(&c).unwrap();
            let back = Config::from_yaml_str(&rendered.yaml)
                .unwrap_or_else(|e| panic!("{hostile:?}: {e}\n{}", rendered.yaml));
            assert_eq!(back.auth.publish_webhook.as_ref().unwrap().url, hostile);
            assert_eq!(
                back.auth.play_webhook.as_ref().unwrap().url,
                format!("{hostile}#play")
            );
            if let Some(edge) = &back.edge {
                assert_eq!(edge.upstreams[0], hostile);
                assert_eq!(edge.balancing.peer_service.as_deref(), Some(hostile));
            }
            // Nothing else moved: the whole config is what was rendered.
            assert_eq!(back, c, "{name}: {hostile:?}");
            assert_eq!(
                (back.auth.allow_takeover, back.role),
                (baseline.auth.allow_takeover, baseline.role)
            );
        }
    }
}

/// Through the whole builder: a hostile webhook URL, Service annotation or
/// name is either rendered as that exact string or refused by the media
/// server's validation (a Degraded condition); it never reshapes the config.
#[test]
fn hostile_spec_values_are_rendered_verbatim_or_refused() {
    let plain = secured(None);
    let baseline = config(
        &desired(&cluster("live", plain.clone()), &inputs()).unwrap(),
        "live-origin",
    );
    for &hostile in HOSTILE {
        let mut spec = plain.clone();
        spec.security.publish_webhook = Some(hook(hostile));
        spec.edges[0]
            .service
            .annotations
            .insert("note".to_owned(), hostile.to_owned());
        let mut mc = cluster("live", spec);
        mc.metadata.annotations = Some([("note".to_owned(), hostile.to_owned())].into());
        match desired(&mc, &inputs()) {
            Ok(d) => {
                let got = config(&d, "live-origin");
                assert_eq!(got.auth.publish_webhook.as_ref().unwrap().url, hostile);
                let mut expected = baseline.clone();
                expected.auth.publish_webhook = got.auth.publish_webhook.clone();
                assert_eq!(got, expected, "{hostile:?}");
                let Some(Child::Service(svc)) = d.get(Kind::Service, "live-edge-london") else {
                    panic!("no Service");
                };
                assert_eq!(svc.metadata.annotations.as_ref().unwrap()["note"], hostile);
            }
            Err(BuildError::Config(media_config::ConfigError::Invalid { source, .. })) => {
                assert!(
                    source.to_string().contains("auth.publish_webhook"),
                    "{hostile:?}: {source}"
                );
            }
            Err(e) => panic!("{hostile:?}: {e}"),
        }
    }
    // Names are DNS labels by the CRD's rules; the builder must not depend on it.
    for &hostile in HOSTILE {
        let mut spec = secured(None);
        spec.edges = vec![EdgePool::named(hostile)];
        let mc = cluster(hostile, spec);
        let pool = mc.spec.edges[0].clone();
        match media_config::edge(&mc, &pool, NS) {
            Ok(rendered) => {
                let back = Config::from_yaml_str(&rendered.yaml).unwrap();
                assert_eq!(
                    back.edge.unwrap().upstreams,
                    media_config::upstream_urls(&mc, &pool, NS),
                    "{hostile:?}"
                );
                assert_eq!(back.auth.publish_webhook, None, "{hostile:?}");
                assert!(!back.auth.allow_takeover, "{hostile:?}");
            }
            Err(media_config::ConfigError::Invalid { .. }) => {}
            Err(e) => panic!("{hostile:?}: {e}"),
        }
    }
}
