//! Table-driven tests of the desired-state builders.

use fleetcast_media::config::{BalancingMode as MediaBalancing, Config, Role};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::json;

use super::*;
use crate::crd::v1alpha1::{
    Autoscaling, BalancingMode, EdgePool, MediaClusterSpec, ScalingMetric, SecretKeyRef,
    StorageType,
};

const NS: &str = "video";

fn cluster(name: &str, spec: MediaClusterSpec) -> MediaCluster {
    let mut mc = MediaCluster::new(name, spec);
    mc.metadata.namespace = Some(NS.to_owned());
    mc.metadata.uid = Some("6f0c1d2e-0000-4000-8000-000000000001".to_owned());
    mc
}

fn pool(name: &str, upstream: &str) -> EdgePool {
    EdgePool {
        upstream: upstream.to_owned(),
        ..EdgePool::named(name)
    }
}

fn two_regions() -> MediaClusterSpec {
    MediaClusterSpec {
        edges: vec![pool("london", "origin"), pool("tokyo", "origin")],
        ..MediaClusterSpec::default()
    }
}

fn inputs() -> Inputs {
    Inputs {
        default_tag: "0.1.0".to_owned(),
        operator_namespace: Some("fleetcast-system".to_owned()),
    }
}

fn build(mc: &MediaCluster) -> Desired {
    desired(mc, &inputs()).expect("builds")
}

fn config_of(d: &Desired, name: &str) -> Config {
    let Some(Child::ConfigMap(cm)) = d.get(Kind::ConfigMap, name) else {
        panic!("no ConfigMap {name}");
    };
    let yaml = &cm.data.as_ref().unwrap()["config.yaml"];
    let config = Config::from_yaml_str(yaml).unwrap();
    config.validate().unwrap();
    config
}

fn template_of(d: &Desired, kind: Kind, name: &str) -> PodTemplateSpec {
    match d.get(kind, name) {
        Some(Child::Deployment(o)) => o.spec.clone().unwrap().template,
        Some(Child::StatefulSet(o)) => o.spec.clone().unwrap().template,
        other => panic!("no workload {kind}/{name}: {other:?}"),
    }
}

fn hash_of(d: &Desired, name: &str) -> String {
    let t = template_of(d, Kind::Deployment, name);
    t.metadata.unwrap().annotations.unwrap()[names::CONFIG_HASH_ANNOTATION].clone()
}

fn keys(list: &[(Kind, &str)]) -> Vec<ChildKey> {
    list.iter()
        .map(|(kind, name)| ChildKey {
            kind: *kind,
            name: (*name).to_owned(),
        })
        .collect()
}

#[test]
fn two_regional_pools_make_every_child() {
    let d = build(&cluster("live", two_regions()));
    let mut got = d.keys();
    got.sort();
    let mut want = keys(&[
        (Kind::ConfigMap, "live-origin"),
        (Kind::ConfigMap, "live-edge-london"),
        (Kind::ConfigMap, "live-edge-tokyo"),
        (Kind::Service, "live-origin"),
        (Kind::Service, "live-ingest"),
        (Kind::Service, "live-edge-london"),
        (Kind::Service, "live-edge-tokyo"),
        (Kind::Deployment, "live-origin"),
        (Kind::Deployment, "live-edge-london"),
        (Kind::Deployment, "live-edge-tokyo"),
        (Kind::PodDisruptionBudget, "live-origin"),
        (Kind::PodDisruptionBudget, "live-edge-london"),
        (Kind::PodDisruptionBudget, "live-edge-tokyo"),
    ]);
    want.sort();
    assert_eq!(got, want);
    // Applied config first, workloads before PDBs.
    let kinds: Vec<Kind> = d.children.iter().map(Child::kind).collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(kinds, sorted);
}

#[test]
fn edges_are_wired_to_their_upstream() {
    let spec = MediaClusterSpec {
        edges: vec![pool("tokyo", "origin"), pool("osaka", "tokyo")],
        ..MediaClusterSpec::default()
    };
    let d = build(&cluster("live", spec));
    let table = [
        (
            "live-edge-tokyo",
            [
                "rtmp://live-origin.video.svc:1935",
                "http://live-origin.video.svc:8080",
            ],
        ),
        (
            "live-edge-osaka",
            [
                "rtmp://live-edge-tokyo.video.svc:1935",
                "http://live-edge-tokyo.video.svc:8080",
            ],
        ),
    ];
    for (name, want) in table {
        let config = config_of(&d, name);
        assert_eq!(config.role, Role::Edge, "{name}");
        assert_eq!(config.edge.unwrap().upstreams, want, "{name}");
    }
    let origin = config_of(&d, "live-origin");
    assert_eq!(origin.role, Role::Origin);
    assert!(origin.edge.is_none());
    // The origins' Service is headless so edges resolve it to every origin pod.
    let Some(Child::Service(svc)) = d.get(Kind::Service, "live-origin") else {
        panic!()
    };
    assert_eq!(
        svc.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("None")
    );
    assert_eq!(
        svc.spec.as_ref().unwrap().selector.as_ref().unwrap()["app.kubernetes.io/component"],
        "origin"
    );
}

#[test]
fn tiered_upstream_uses_the_parent_service_ports() {
    let mut tokyo = pool("tokyo", "origin");
    tokyo.service.ports.rtmp = 19350;
    tokyo.service.ports.http = 80;
    let spec = MediaClusterSpec {
        edges: vec![tokyo, pool("osaka", "tokyo")],
        ..MediaClusterSpec::default()
    };
    let d = build(&cluster("live", spec));
    assert_eq!(
        config_of(&d, "live-edge-osaka").edge.unwrap().upstreams,
        [
            "rtmp://live-edge-tokyo.video.svc:19350",
            "http://live-edge-tokyo.video.svc:80"
        ]
    );
}

#[test]
fn playback_write_interval_reaches_origins_and_edges() {
    let d = build(&cluster("live", two_regions()));
    let default_ms = fleetcast_media::config::DEFAULT_WRITE_INTERVAL_MS;
    assert_eq!(
        config_of(&d, "live-origin").playback.write_interval_ms,
        default_ms
    );
    let mut spec = two_regions();
    spec.playback.write_interval_ms = Some(0);
    let changed = build(&cluster("live", spec));
    for name in ["live-origin", "live-edge-london", "live-edge-tokyo"] {
        assert_eq!(
            config_of(&changed, name).playback.write_interval_ms,
            0,
            "{name}"
        );
        // A new config rolls the pods: the hash on the template changes.
        assert_ne!(hash_of(&d, name), hash_of(&changed, name), "{name}");
    }
}

#[test]
fn balancing_modes() {
    let table = [
        (BalancingMode::Service, MediaBalancing::Service, false),
        (BalancingMode::Clustered, MediaBalancing::Clustered, true),
        (BalancingMode::Redirect, MediaBalancing::Redirect, true),
    ];
    for (mode, want, peers) in table {
        let mut spec = two_regions();
        spec.balancing.mode = mode;
        let d = build(&cluster("live", spec));
        let balancing = config_of(&d, "live-edge-london").edge.unwrap().balancing;
        assert_eq!(balancing.mode, want);
        assert_eq!(
            d.get(Kind::Service, "live-edge-london-peers").is_some(),
            peers,
            "{mode:?}"
        );
        if peers {
            assert_eq!(
                balancing.peer_service.as_deref(),
                Some("live-edge-london-peers.video.svc")
            );
            let Some(Child::Service(svc)) = d.get(Kind::Service, "live-edge-london-peers") else {
                panic!()
            };
            assert_eq!(
                svc.spec.as_ref().unwrap().cluster_ip.as_deref(),
                Some("None")
            );
        } else {
            assert_eq!(balancing.peer_service, None);
        }
    }
}

#[test]
fn every_child_has_labels_and_a_controller_owner() {
    let mut spec = two_regions();
    spec.balancing.mode = BalancingMode::Clustered;
    let mc = cluster("live", spec);
    let d = build(&mc);
    for child in &d.children {
        let meta = child.meta();
        let labels = meta.labels.as_ref().unwrap();
        for (key, want) in [
            ("app.kubernetes.io/name", Some("fleetcast-media")),
            ("app.kubernetes.io/instance", Some("live")),
            ("app.kubernetes.io/part-of", Some("fleetcast")),
            ("app.kubernetes.io/managed-by", Some("fleetcast-operator")),
            ("app.kubernetes.io/version", Some("0.1.0")),
        ] {
            assert_eq!(
                labels.get(key).map(String::as_str),
                want,
                "{} {key}",
                child.key()
            );
        }
        let component = &labels["app.kubernetes.io/component"];
        if child.name().contains("-edge-") {
            assert_eq!(component, "edge");
            assert!(labels.contains_key(names::POOL_LABEL));
        } else {
            assert_eq!(component, "origin");
        }
        assert_eq!(meta.namespace.as_deref(), Some(NS));
        let owners = meta.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "MediaCluster");
        assert_eq!(owners[0].api_version, "fleetcast.io/v1alpha1");
        assert_eq!(owners[0].name, "live");
        assert_eq!(Some(&owners[0].uid), mc.metadata.uid.as_ref());
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(owners[0].block_owner_deletion, Some(true));
    }
}

#[test]
fn pod_template_runs_the_server_with_its_config() {
    let d = build(&cluster("live", two_regions()));
    for name in ["live-origin", "live-edge-london"] {
        let t = template_of(&d, Kind::Deployment, name);
        let spec = t.spec.unwrap();
        let c = &spec.containers[0];
        assert_eq!(c.name, "media");
        assert_eq!(
            c.image.as_deref(),
            Some("ghcr.io/fleetcast/fleetcast-media:0.1.0")
        );
        assert_eq!(
            c.args.as_deref().unwrap(),
            ["--config", "/etc/fleetcast/config.yaml"]
        );
        let probe = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        // Readiness turns 503 while the pod drains; liveness stays on /healthz.
        assert_eq!(probe.path.as_deref(), Some("/readyz"));
        let live = c
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(live.path.as_deref(), Some("/healthz"));
        let ports: Vec<i32> = c
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(ports, [1935, 8080, 8081]);
        let config_volume = spec
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "config")
            .unwrap();
        assert_eq!(config_volume.config_map.as_ref().unwrap().name, name);
        // Selector labels are a subset of the pod labels.
        let labels = t.metadata.unwrap().labels.unwrap();
        let Some(Child::Deployment(dep)) = d.get(Kind::Deployment, name) else {
            panic!()
        };
        for (k, v) in dep
            .spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()
        {
            assert_eq!(labels.get(k), Some(v), "{name} {k}");
        }
    }
}

type Edit = fn(&mut MediaClusterSpec);

#[test]
fn config_hash_changes_only_when_that_pools_config_changes() {
    let base = two_regions();
    let before = build(&cluster("live", base.clone()));
    // (what, edit, london hash changes, tokyo hash changes)
    let table: [(&str, Edit, bool, bool); 6] = [
        ("nothing", |_| {}, false, false),
        ("london replicas", |s| s.edges[0].replicas = 7, false, false),
        (
            "london resources",
            |s| {
                s.edges[0].resources =
                    Some(k8s_openapi::api::core::v1::ResourceRequirements::default());
            },
            false,
            false,
        ),
        (
            "london cache memory",
            |s| s.edges[0].cache.memory = "1Gi".into(),
            true,
            false,
        ),
        (
            "tokyo cache disk",
            |s| s.edges[1].cache.disk = "20Gi".into(),
            false,
            true,
        ),
        (
            "balancing mode",
            |s| s.balancing.mode = BalancingMode::Clustered,
            true,
            true,
        ),
    ];
    for (what, edit, london, tokyo) in table {
        let mut spec = base.clone();
        edit(&mut spec);
        let after = build(&cluster("live", spec));
        for (name, changes) in [("live-edge-london", london), ("live-edge-tokyo", tokyo)] {
            assert_eq!(
                hash_of(&before, name) != hash_of(&after, name),
                changes,
                "{what}: {name}"
            );
        }
        assert_eq!(
            hash_of(&before, "live-origin"),
            hash_of(&after, "live-origin"),
            "{what}"
        );
    }
}

#[test]
fn hash_is_the_rendered_configs_hash() {
    let d = build(&cluster("live", two_regions()));
    let Some(Child::ConfigMap(cm)) = d.get(Kind::ConfigMap, "live-edge-tokyo") else {
        panic!()
    };
    let yaml = &cm.data.as_ref().unwrap()["config.yaml"];
    assert_eq!(hash_of(&d, "live-edge-tokyo"), media_config::hash(yaml));
    assert_eq!(media_config::hash("a").len(), 16);
}

#[test]
fn origin_storage_picks_the_workload() {
    let table = [
        (StorageType::None, Kind::Deployment, None),
        (StorageType::Shared, Kind::Deployment, Some("vod")),
        (StorageType::PerOrigin, Kind::StatefulSet, None),
    ];
    for (storage, kind, claim) in table {
        let mut spec = two_regions();
        spec.origin.storage.type_ = storage;
        spec.origin.storage.claim_name = Some("vod".into());
        spec.origin.storage.size = Some("50Gi".into());
        let d = build(&cluster("live", spec));
        let other = if kind == Kind::Deployment {
            Kind::StatefulSet
        } else {
            Kind::Deployment
        };
        assert!(d.get(other, "live-origin").is_none(), "{storage:?}");
        let t = template_of(&d, kind, "live-origin");
        let pod = t.spec.unwrap();
        let data = pod.volumes.unwrap().into_iter().find(|v| v.name == "data");
        let mount = pod.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.name == "data" && m.mount_path == "/data");
        assert!(mount, "{storage:?}");
        match storage {
            StorageType::None => assert!(data.unwrap().empty_dir.is_some()),
            StorageType::Shared => assert_eq!(
                data.unwrap()
                    .persistent_volume_claim
                    .unwrap()
                    .claim_name
                    .as_str(),
                claim.unwrap()
            ),
            StorageType::PerOrigin => {
                assert!(data.is_none(), "the claim template provides it");
                let Some(Child::StatefulSet(sts)) = d.get(Kind::StatefulSet, "live-origin") else {
                    panic!()
                };
                let spec = sts.spec.as_ref().unwrap();
                assert_eq!(spec.service_name.as_deref(), Some("live-origin"));
                let vct = &spec.volume_claim_templates.as_ref().unwrap()[0];
                assert_eq!(vct.metadata.name.as_deref(), Some("data"));
                let req = vct
                    .spec
                    .as_ref()
                    .unwrap()
                    .resources
                    .as_ref()
                    .unwrap()
                    .requests
                    .as_ref()
                    .unwrap();
                assert_eq!(req["storage"].0, "50Gi");
            }
        }
    }
}

#[test]
fn autoscaling_metric_decides_hpa_and_replicas() {
    let autoscaling = |metric| Autoscaling {
        min_replicas: 2,
        max_replicas: 9,
        metric,
        target: 70,
        behavior: None,
    };
    // Autoscaled pools leave `replicas` to the HPA or the operator's loop (its own field manager).
    let table = [
        (None, false, Some(2)),
        (Some(autoscaling(ScalingMetric::Cpu)), true, None),
        (Some(autoscaling(ScalingMetric::Viewers)), false, None),
        (Some(autoscaling(ScalingMetric::Bandwidth)), false, None),
    ];
    for (scaling, hpa, replicas) in table {
        let mut spec = two_regions();
        spec.edges[0].autoscaling = scaling.clone();
        let d = build(&cluster("live", spec));
        assert_eq!(
            d.get(Kind::HorizontalPodAutoscaler, "live-edge-london")
                .is_some(),
            hpa,
            "{scaling:?}"
        );
        assert!(
            d.get(Kind::HorizontalPodAutoscaler, "live-edge-tokyo")
                .is_none()
        );
        let Some(Child::Deployment(dep)) = d.get(Kind::Deployment, "live-edge-london") else {
            panic!()
        };
        assert_eq!(dep.spec.as_ref().unwrap().replicas, replicas, "{scaling:?}");
    }
    // A behavior the HPA API would refuse builds nothing.
    let mut spec = two_regions();
    let mut a = autoscaling(ScalingMetric::Viewers);
    a.behavior = Some(
        serde_json::from_value(serde_json::json!({"scaleDown": {"selectPolicy": "Sometimes"}}))
            .unwrap(),
    );
    spec.edges[0].autoscaling = Some(a);
    let err = desired(&cluster("live", spec), &inputs()).unwrap_err();
    assert_eq!(err.reason(), "InvalidAutoscalingBehavior");
    assert!(err.to_string().contains("london"), "{err}");
}

#[test]
fn edges_get_a_grace_period_longer_than_their_drain() {
    let mut spec = two_regions();
    spec.edges[0].drain.seconds = 45;
    let d = build(&cluster("live", spec));
    let grace = |name| {
        template_of(&d, Kind::Deployment, name)
            .spec
            .unwrap()
            .termination_grace_period_seconds
            .unwrap()
    };
    assert_eq!(
        grace("live-edge-london"),
        45 + edge::TERMINATION_MARGIN_SECS
    );
    assert_eq!(grace("live-edge-tokyo"), 20 + edge::TERMINATION_MARGIN_SECS);
    let config = config_of(&d, "live-edge-london");
    assert_eq!(config.drain.period_secs, 45);
}

#[test]
fn cycles_and_bad_quantities_build_nothing() {
    let mut cyclic = two_regions();
    cyclic.edges = vec![pool("a", "b"), pool("b", "c"), pool("c", "a")];
    let err = desired(&cluster("live", cyclic), &inputs()).unwrap_err();
    assert_eq!(err.reason(), "UpstreamCycle");
    assert!(err.to_string().contains("a -> b -> c -> a"), "{err}");

    let mut bad = two_regions();
    bad.edges[1].cache.memory = "lots".into();
    let err = desired(&cluster("live", bad), &inputs()).unwrap_err();
    assert_eq!(err.reason(), "InvalidQuantity");
    assert!(err.to_string().contains("tokyo"), "{err}");

    let mut zero = two_regions();
    zero.edges[0].cache.memory = "0".into();
    let err = desired(&cluster("live", zero), &inputs()).unwrap_err();
    assert_eq!(err.reason(), "InvalidMediaConfig");
    assert!(err.to_string().contains("memory_bytes"), "{err}");
}

#[test]
fn the_cache_bound_leaves_room_in_its_volume() {
    let mut spec = two_regions();
    spec.edges[0].cache.disk = "10Gi".into();
    let d = build(&cluster("live", spec));
    let pod = template_of(&d, Kind::Deployment, "live-edge-london")
        .spec
        .unwrap();
    let cache = pod.volumes.unwrap().into_iter().find(|v| v.name == "cache");
    // The volume is the declared size; the server's bound is 80% of it.
    assert_eq!(
        cache.unwrap().empty_dir.unwrap().size_limit,
        Some(Quantity("10Gi".into()))
    );
    let bound = config_of(&d, "live-edge-london")
        .edge
        .unwrap()
        .cache
        .disk_bytes;
    assert_eq!(bound, 8 * (1 << 30));
    assert_eq!(media_config::cache_disk_bytes(5), 4);
    assert_eq!(
        media_config::cache_disk_bytes(u64::MAX),
        u64::MAX - u64::MAX / 5
    );
}

#[test]
fn pod_overrides_merge_by_container_name() {
    let mut spec = two_regions();
    spec.edges[0].pod_overrides = Some(json!({
        "metadata": {"annotations": {"example.com/team": "video"}},
        "spec": {
            "priorityClassName": "live",
            "containers": [{"name": "media", "env": [{"name": "RUST_LOG", "value": "debug"}]}]
        }
    }));
    spec.origin.pod_overrides = Some(json!({"spec": {"hostNetwork": true}}));
    let d = build(&cluster("live", spec));
    let t = template_of(&d, Kind::Deployment, "live-edge-london");
    let annotations = t.metadata.unwrap().annotations.unwrap();
    assert_eq!(annotations["example.com/team"], "video");
    assert!(annotations.contains_key(names::CONFIG_HASH_ANNOTATION));
    let pod = t.spec.unwrap();
    assert_eq!(pod.priority_class_name.as_deref(), Some("live"));
    assert_eq!(pod.containers.len(), 1);
    let env: Vec<&str> = pod.containers[0]
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert!(
        env.contains(&"RUST_LOG") && env.contains(&"POD_IP"),
        "{env:?}"
    );
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("ghcr.io/fleetcast/fleetcast-media:0.1.0")
    );
    let origin = template_of(&d, Kind::Deployment, "live-origin")
        .spec
        .unwrap();
    assert_eq!(origin.host_network, Some(true));
    assert_eq!(origin.containers.len(), 1);
    // Tokyo is untouched.
    assert_eq!(
        template_of(&d, Kind::Deployment, "live-edge-tokyo")
            .spec
            .unwrap()
            .priority_class_name,
        None
    );

    let mut bad = two_regions();
    bad.edges[1].pod_overrides = Some(json!({"spec": {"containers": "no"}}));
    let err = desired(&cluster("live", bad), &inputs()).unwrap_err();
    assert_eq!(err.reason(), "InvalidPodOverrides");
    assert!(err.to_string().contains("tokyo"), "{err}");
}

#[test]
fn scheduling_and_topology_spread_default_selector() {
    let mut spec = two_regions();
    spec.edges[1].scheduling = Some(serde_json::from_value(json!({
        "nodeSelector": {"topology.kubernetes.io/region": "ap-northeast-1"},
        "tolerations": [{"key": "edge", "operator": "Exists"}],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}]
    })).unwrap());
    let d = build(&cluster("live", spec));
    let pod = template_of(&d, Kind::Deployment, "live-edge-tokyo")
        .spec
        .unwrap();
    assert_eq!(
        pod.node_selector.unwrap()["topology.kubernetes.io/region"],
        "ap-northeast-1"
    );
    assert_eq!(pod.tolerations.unwrap().len(), 1);
    let tsc = &pod.topology_spread_constraints.unwrap()[0];
    let sel = tsc
        .label_selector
        .as_ref()
        .unwrap()
        .match_labels
        .as_ref()
        .unwrap();
    assert_eq!(sel[names::POOL_LABEL], "tokyo");
    assert!(
        template_of(&d, Kind::Deployment, "live-edge-london")
            .spec
            .unwrap()
            .node_selector
            .is_none()
    );
}

#[test]
fn longest_allowed_names_fit_kubernetes_limits() {
    // The CRD allows 40-character cluster names and name + pool <= 51.
    let mc_name = format!("a{}", "b".repeat(39));
    let pool_name = "p".repeat(11);
    let mut spec = MediaClusterSpec {
        edges: vec![pool(&pool_name, "origin")],
        ..MediaClusterSpec::default()
    };
    spec.balancing.mode = BalancingMode::Redirect;
    let d = build(&cluster(&mc_name, spec));
    for child in &d.children {
        assert!(
            child.name().len() <= 63,
            "{} is {} long",
            child.name(),
            child.name().len()
        );
    }
    assert!(names::edge_peers(&mc_name, &pool_name).len() <= 63);
}

#[test]
fn prune_set_is_owned_minus_desired() {
    let desired = keys(&[
        (Kind::ConfigMap, "live-origin"),
        (Kind::Deployment, "live-edge-tokyo"),
    ]);
    let table: [(&str, Vec<ChildKey>, Vec<ChildKey>); 4] = [
        ("nothing owned", vec![], vec![]),
        ("all desired", desired.clone(), vec![]),
        (
            "removed pool, workloads first",
            keys(&[
                (Kind::ConfigMap, "live-origin"),
                (Kind::ConfigMap, "live-edge-london"),
                (Kind::Service, "live-edge-london"),
                (Kind::Deployment, "live-edge-london"),
                (Kind::Deployment, "live-edge-tokyo"),
            ]),
            keys(&[
                (Kind::Deployment, "live-edge-london"),
                (Kind::Service, "live-edge-london"),
                (Kind::ConfigMap, "live-edge-london"),
            ]),
        ),
        (
            "same name, other kind (storage switched to perOrigin)",
            keys(&[
                (Kind::StatefulSet, "live-edge-tokyo"),
                (Kind::Deployment, "live-edge-tokyo"),
            ]),
            keys(&[(Kind::StatefulSet, "live-edge-tokyo")]),
        ),
    ];
    for (what, existing, want) in table {
        assert_eq!(prune_set(&desired, &existing), want, "{what}");
    }
}

#[test]
fn removing_a_pool_removes_exactly_its_children() {
    let before = build(&cluster("live", two_regions()));
    let mut spec = two_regions();
    spec.edges.remove(0);
    let after = build(&cluster("live", spec));
    let stale = prune_set(&after.keys(), &before.keys());
    assert!(!stale.is_empty());
    for key in &stale {
        assert!(key.name.starts_with("live-edge-london"), "{key}");
    }
    let london = before
        .keys()
        .into_iter()
        .filter(|k| k.name.starts_with("live-edge-london"))
        .count();
    assert_eq!(stale.len(), london);
}

#[test]
fn missing_namespace_or_uid_is_an_error() {
    let mut mc = cluster("live", two_regions());
    mc.metadata.uid = None;
    assert_eq!(
        desired(&mc, &inputs()).unwrap_err().reason(),
        "MissingMetadata"
    );
}

#[test]
fn publish_auth_points_the_origin_config_at_the_mounted_secret() {
    let open = build(&cluster("live", two_regions()));
    assert_eq!(
        config_of(&open, "live-origin").auth.publish_token_file,
        None
    );

    let mut spec = two_regions();
    spec.origin.publish_auth = Some(SecretKeyRef {
        name: "stream-keys".to_owned(),
        key: "token".to_owned(),
    });
    let d = build(&cluster("live", spec));
    let config = config_of(&d, "live-origin");
    let file = config.auth.publish_token_file.expect("token file set");
    let template = template_of(&d, Kind::Deployment, "live-origin");
    let pod = template.spec.unwrap();
    let mount = pod.containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "publish-auth")
        .expect("secret mounted")
        .clone();
    assert_eq!(
        file,
        std::path::Path::new(&mount.mount_path).join("publish-token")
    );
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "publish-auth")
        .unwrap();
    assert_eq!(
        volume.secret.unwrap().secret_name.as_deref(),
        Some("stream-keys")
    );
    // Edges do not take publishers.
    assert_eq!(
        config_of(&d, "live-edge-london").auth.publish_token_file,
        None
    );
}
