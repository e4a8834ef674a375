//! The controller on a real control plane: children and their wiring, targeted
//! updates, pruning, drift correction, garbage collection, truthful status,
//! and specs the operator refuses to wire. No kubelet runs here, so pods stay
//! Pending and a MediaCluster must never claim to be Ready.

// Test crate: panics are the failure reports; kinds are prose in docs.
#![allow(clippy::unwrap_used, clippy::doc_markdown, clippy::too_many_lines)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{InProcess, WAIT, create, install_crd, mc_from_yaml};
use fleetcast_media::config::Config;
use fleetcast_operator::build::names;
use fleetcast_operator::crd::MediaCluster;
use fleetcast_operator::reconcile::status;
use fleetcast_testkit::cluster::Cluster;
use fleetcast_testkit::wait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const LIVE: &str = r"
apiVersion: fleetcast.io/v1alpha1
kind: MediaCluster
metadata: { name: live }
spec:
  balancing: { mode: clustered }
  edges:
    - name: london
      replicas: 3
    - name: tokyo
      cache: { memory: 128Mi, disk: 2Gi }
";

async fn setup(prefix: &str) -> (Cluster, fleetcast_testkit::cluster::TestNamespace, Client) {
    let cluster = Cluster::shared().await.expect("test cluster");
    install_crd(&cluster).await.expect("CRD installed");
    let ns = cluster.namespace(prefix).await.expect("namespace");
    let client = cluster.client().await.expect("client");
    (cluster, ns, client)
}

fn children_of(mc: &str) -> ListParams {
    ListParams::default().labels(&names::children_selector(mc))
}

async fn names_of<K>(api: &Api<K>, mc: &str) -> anyhow::Result<Vec<String>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut names: Vec<String> = api
        .list(&children_of(mc))
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    names.sort();
    Ok(names)
}

async fn wait_for_children(
    client: &Client,
    ns: &str,
) -> (Api<Deployment>, Api<Service>, Api<ConfigMap>) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    wait::until("every child of live", WAIT, || {
        let (d, s, c, p) = (
            deployments.clone(),
            services.clone(),
            config_maps.clone(),
            pdbs.clone(),
        );
        async move {
            let all = (
                names_of(&d, "live").await?,
                names_of(&s, "live").await?,
                names_of(&c, "live").await?,
                names_of(&p, "live").await?,
            );
            let want = (
                vec!["live-edge-london", "live-edge-tokyo", "live-origin"],
                vec![
                    "live-edge-london",
                    "live-edge-london-peers",
                    "live-edge-tokyo",
                    "live-edge-tokyo-peers",
                    "live-ingest",
                    "live-origin",
                ],
                vec!["live-edge-london", "live-edge-tokyo", "live-origin"],
                vec!["live-edge-london", "live-edge-tokyo", "live-origin"],
            );
            Ok(
                (all.0 == want.0 && all.1 == want.1 && all.2 == want.2 && all.3 == want.3)
                    .then_some(()),
            )
        }
    })
    .await
    .expect("children created");
    (deployments, services, config_maps)
}

fn config_of(cm: &ConfigMap) -> Config {
    let yaml = &cm.data.as_ref().expect("data")["config.yaml"];
    let config = Config::from_yaml_str(yaml).expect("media config parses");
    config.validate().expect("media config is valid");
    config
}

fn hash_of(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[names::CONFIG_HASH_ANNOTATION]
        .clone()
}

async fn events_of(client: &Client, ns: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn create_wires_every_child_and_status_tells_the_truth() {
    let (_cluster, ns, client) = setup("op-create").await;
    let _operator = InProcess::start(client.clone(), &ns.name);
    let mc = create(&client, &ns.name, &mc_from_yaml(LIVE))
        .await
        .unwrap();
    let (deployments, services, config_maps) = wait_for_children(&client, &ns.name).await;

    // Edges pull from every origin through the headless Service, by DNS name.
    let origin_svc = services.get("live-origin").await.unwrap();
    assert_eq!(
        origin_svc.spec.as_ref().unwrap().cluster_ip.as_deref(),
        Some("None")
    );
    let host = format!("live-origin.{}.svc", ns.name);
    for pool in ["london", "tokyo"] {
        let cm = config_maps.get(&format!("live-edge-{pool}")).await.unwrap();
        let edge = config_of(&cm).edge.expect("edge section");
        assert_eq!(
            edge.upstreams,
            [format!("rtmp://{host}:1935"), format!("http://{host}:8080")],
            "{pool}"
        );
        assert_eq!(
            edge.balancing.peer_service,
            Some(format!("live-edge-{pool}-peers.{}.svc", ns.name))
        );
        let d = deployments.get(&format!("live-edge-{pool}")).await.unwrap();
        assert_eq!(
            hash_of(&d),
            fleetcast_operator::build::media_config::hash(
                &cm.data.as_ref().unwrap()["config.yaml"]
            )
        );
        let owner = &d.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("MediaCluster", mc.uid().unwrap().as_str(), Some(true))
        );
        assert_eq!(
            d.labels()["app.kubernetes.io/managed-by"],
            "fleetcast-operator"
        );
        assert_eq!(d.labels()[names::POOL_LABEL], pool);
    }
    assert_eq!(
        deployments
            .get("live-edge-london")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(3)
    );
    assert_eq!(
        config_of(&config_maps.get("live-edge-tokyo").await.unwrap())
            .edge
            .unwrap()
            .cache
            .memory_bytes,
        128 << 20
    );

    // No kubelet: pods never run, so the cluster is created but not Ready.
    let api: Api<MediaCluster> = Api::namespaced(client.clone(), &ns.name);
    let status = wait::until("status with origins counted", WAIT, || {
        let api = api.clone();
        async move {
            let mc = api.get("live").await?;
            Ok(mc.status.filter(|s| {
                s.origin.is_some()
                    && s.edges.len() == 2
                    && s.observed_generation == mc.metadata.generation
            }))
        }
    })
    .await
    .unwrap();
    let ready = status::find(&status, status::READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ReplicasNotReady"),
        "{ready:?}"
    );
    assert!(ready.message.contains("origins 0/2"), "{}", ready.message);
    assert_eq!(
        status::find(&status, status::PROGRESSING).unwrap().status,
        "True"
    );
    assert_eq!(
        status::find(&status, status::DEGRADED).unwrap().status,
        "False"
    );
    for c in &status.conditions {
        assert_eq!(c.observed_generation, mc.metadata.generation);
    }
    assert_eq!(status.origins_ready.as_deref(), Some("0/2"));
    assert_eq!(status.edges_ready.as_deref(), Some("0/5"));
    assert_eq!(
        status.endpoints.unwrap().ingest,
        format!("rtmp://live-ingest.{}.svc:1935/live", ns.name)
    );
    // And it stays not Ready: ask again after the controllers have settled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = api.get("live").await.unwrap().status.unwrap();
    assert_eq!(status::find(&again, status::READY).unwrap().status, "False");

    let events = events_of(&client, &ns.name).await;
    assert!(
        events
            .iter()
            .any(|(r, note)| r == "Created" && note.contains("Deployment/live-edge-tokyo")),
        "{events:?}"
    );
}

#[tokio::test]
async fn changing_a_pool_changes_its_objects_only_and_removing_it_prunes_them() {
    let (_cluster, ns, client) = setup("op-change").await;
    let _operator = InProcess::start(client.clone(), &ns.name);
    create(&client, &ns.name, &mc_from_yaml(LIVE))
        .await
        .unwrap();
    let (deployments, services, config_maps) = wait_for_children(&client, &ns.name).await;
    // Let the first rounds settle, then take a snapshot.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let generations = |list: Vec<Deployment>| -> BTreeMap<String, (i64, String)> {
        list.into_iter()
            .map(|d| (d.name_any(), (d.metadata.generation.unwrap(), hash_of(&d))))
            .collect()
    };
    let versions = |list: Vec<ConfigMap>| -> BTreeMap<String, String> {
        list.into_iter()
            .map(|c| (c.name_any(), c.resource_version().unwrap()))
            .collect()
    };
    let before = generations(deployments.list(&children_of("live")).await.unwrap().items);
    let cms_before = versions(config_maps.list(&children_of("live")).await.unwrap().items);

    let api: Api<MediaCluster> = Api::namespaced(client.clone(), &ns.name);
    update_spec(&api, "live", |mc| {
        mc.spec.edges[1].cache.memory = "512Mi".into();
    })
    .await;

    let after = wait::until("tokyo's Deployment to roll", WAIT, || {
        let d = deployments.clone();
        let before = before.clone();
        async move {
            let now = generations(d.list(&children_of("live")).await?.items);
            Ok((now["live-edge-tokyo"].0 > before["live-edge-tokyo"].0).then_some(now))
        }
    })
    .await
    .unwrap();
    assert_ne!(
        after["live-edge-tokyo"].1, before["live-edge-tokyo"].1,
        "config hash changes with the config"
    );
    assert_eq!(
        after["live-edge-london"], before["live-edge-london"],
        "london untouched"
    );
    assert_eq!(
        after["live-origin"], before["live-origin"],
        "origins untouched"
    );
    let cms_after = versions(config_maps.list(&children_of("live")).await.unwrap().items);
    assert_ne!(cms_after["live-edge-tokyo"], cms_before["live-edge-tokyo"]);
    assert_eq!(
        cms_after["live-edge-london"],
        cms_before["live-edge-london"]
    );
    assert_eq!(cms_after["live-origin"], cms_before["live-origin"]);
    let tokyo = config_of(&config_maps.get("live-edge-tokyo").await.unwrap());
    assert_eq!(tokyo.edge.unwrap().cache.memory_bytes, 512 << 20);

    // Remove tokyo: every object of the pool goes, london's stay.
    update_spec(&api, "live", |mc| {
        mc.spec.edges.retain(|p| p.name != "tokyo");
    })
    .await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns.name);
    wait::until("tokyo's objects to be pruned", WAIT, || {
        let (d, s, c, p) = (
            deployments.clone(),
            services.clone(),
            config_maps.clone(),
            pdbs.clone(),
        );
        async move {
            let mut all = names_of(&d, "live").await?;
            all.extend(names_of(&s, "live").await?);
            all.extend(names_of(&c, "live").await?);
            all.extend(names_of(&p, "live").await?);
            Ok((!all.iter().any(|n| n.contains("tokyo"))).then_some(all))
        }
    })
    .await
    .unwrap();
    assert_eq!(
        names_of(&deployments, "live").await.unwrap(),
        ["live-edge-london", "live-origin"]
    );
    assert_eq!(
        names_of(&services, "live").await.unwrap(),
        [
            "live-edge-london",
            "live-edge-london-peers",
            "live-ingest",
            "live-origin"
        ]
    );
    let events = events_of(&client, &ns.name).await;
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "Pruned" && n.contains("Deployment/live-edge-tokyo")),
        "{events:?}"
    );
}

#[tokio::test]
async fn hand_edits_are_put_back() {
    let (_cluster, ns, client) = setup("op-drift").await;
    let _operator = InProcess::start(client.clone(), &ns.name);
    create(&client, &ns.name, &mc_from_yaml(LIVE))
        .await
        .unwrap();
    let (deployments, _, config_maps) = wait_for_children(&client, &ns.name).await;
    let original = config_maps
        .get("live-edge-london")
        .await
        .unwrap()
        .data
        .unwrap();

    // Someone scales a pool by hand and edits its config.
    deployments
        .patch(
            "live-edge-london",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    config_maps
        .patch(
            "live-edge-london",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"config.yaml": "role: origin\n"}})),
        )
        .await
        .unwrap();
    wait::until("the operator to put replicas and config back", WAIT, || {
        let (d, c, original) = (deployments.clone(), config_maps.clone(), original.clone());
        async move {
            let replicas = d
                .get("live-edge-london")
                .await?
                .spec
                .and_then(|s| s.replicas);
            let data = c.get("live-edge-london").await?.data;
            Ok((replicas == Some(3) && data.as_ref() == Some(&original)).then_some(()))
        }
    })
    .await
    .unwrap();

    // Deleting a child by hand recreates it.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    services
        .delete("live-ingest", &DeleteParams::default())
        .await
        .unwrap();
    wait::until("the ingest Service to come back", WAIT, || {
        let s = services.clone();
        async move {
            Ok(s.get_opt("live-ingest")
                .await?
                .filter(|s| s.metadata.deletion_timestamp.is_none())
                .map(|_| ()))
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn deleting_the_mediacluster_garbage_collects_its_children() {
    let (_cluster, ns, client) = setup("op-gc").await;
    let _operator = InProcess::start(client.clone(), &ns.name);
    create(&client, &ns.name, &mc_from_yaml(LIVE))
        .await
        .unwrap();
    let (deployments, services, config_maps) = wait_for_children(&client, &ns.name).await;
    let api: Api<MediaCluster> = Api::namespaced(client.clone(), &ns.name);
    api.delete("live", &DeleteParams::foreground())
        .await
        .unwrap();
    wait::until(
        "the garbage collector to delete every child",
        Duration::from_mins(2),
        || {
            let (d, s, c) = (deployments.clone(), services.clone(), config_maps.clone());
            async move {
                let left = names_of(&d, "live").await?.len()
                    + names_of(&s, "live").await?.len()
                    + names_of(&c, "live").await?.len();
                Ok((left == 0).then_some(()))
            }
        },
    )
    .await
    .unwrap();
    wait::until("the MediaCluster to be gone", WAIT, || {
        let api = api.clone();
        async move { Ok(api.get_opt("live").await?.is_none().then_some(())) }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_upstream_cycle_is_degraded_and_changes_nothing() {
    let (_cluster, ns, client) = setup("op-cycle").await;
    let _operator = InProcess::start(client.clone(), &ns.name);
    // CEL lets this through (each upstream exists, none is its own); the operator must not.
    let cyclic = mc_from_yaml(
        r"
apiVersion: fleetcast.io/v1alpha1
kind: MediaCluster
metadata: { name: ring }
spec:
  edges:
    - { name: osaka, upstream: kyoto }
    - { name: kyoto, upstream: nara }
    - { name: nara, upstream: osaka }
",
    );
    create(&client, &ns.name, &cyclic).await.unwrap();
    let api: Api<MediaCluster> = Api::namespaced(client.clone(), &ns.name);
    let status = wait::until("a Degraded condition", WAIT, || {
        let api = api.clone();
        async move {
            let status = api.get("ring").await?.status;
            Ok(status
                .filter(|s| status::find(s, status::DEGRADED).is_some_and(|c| c.status == "True")))
        }
    })
    .await
    .unwrap();
    let degraded = status::find(&status, status::DEGRADED).unwrap();
    assert_eq!(degraded.reason, "UpstreamCycle");
    assert!(
        degraded.message.contains("kyoto -> nara -> osaka -> kyoto"),
        "{}",
        degraded.message
    );
    assert_eq!(
        status::find(&status, status::READY).unwrap().status,
        "False"
    );
    let events = events_of(&client, &ns.name).await;
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "UpstreamCycle" && n.contains("cycle")),
        "{events:?}"
    );
    // Nothing was created.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    assert!(names_of(&deployments, "ring").await.unwrap().is_empty());
    assert!(names_of(&config_maps, "ring").await.unwrap().is_empty());

    // Breaking the ring lets the operator build it.
    update_spec(&api, "ring", |mc| {
        mc.spec.edges[2].upstream = "origin".into();
    })
    .await;
    wait::until("the pools once the ring is broken", WAIT, || {
        let d = deployments.clone();
        async move { Ok((names_of(&d, "ring").await?.len() == 4).then_some(())) }
    })
    .await
    .unwrap();
    let status = wait::until("Degraded to clear", WAIT, || {
        let api = api.clone();
        async move {
            let status = api.get("ring").await?.status;
            Ok(status
                .filter(|s| status::find(s, status::DEGRADED).is_some_and(|c| c.status == "False")))
        }
    })
    .await
    .unwrap();
    assert_eq!(
        status::find(&status, status::PROGRESSING).unwrap().reason,
        "RollingOut"
    );
}

#[tokio::test]
async fn a_paused_cluster_is_left_alone() {
    let (_cluster, ns, client) = setup("op-pause").await;
    let _operator = InProcess::start(client.clone(), &ns.name);
    create(&client, &ns.name, &mc_from_yaml(LIVE))
        .await
        .unwrap();
    let (deployments, _, _) = wait_for_children(&client, &ns.name).await;
    let api: Api<MediaCluster> = Api::namespaced(client.clone(), &ns.name);
    api.patch(
        "live",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true}})),
    )
    .await
    .unwrap();
    wait::until("Progressing=False/Paused", WAIT, || {
        let api = api.clone();
        async move {
            let status = api.get("live").await?.status;
            Ok(status.filter(|s| {
                status::find(s, status::PROGRESSING).is_some_and(|c| c.reason == "Paused")
            }))
        }
    })
    .await
    .unwrap();
    deployments
        .patch(
            "live-edge-london",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let replicas = deployments
        .get("live-edge-london")
        .await
        .unwrap()
        .spec
        .unwrap()
        .replicas;
    assert_eq!(
        replicas,
        Some(5),
        "a paused cluster's children are not touched"
    );
    api.patch(
        "live",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": false}})),
    )
    .await
    .unwrap();
    wait::until("the hand edit to be put back after unpausing", WAIT, || {
        let d = deployments.clone();
        async move {
            Ok((d
                .get("live-edge-london")
                .await?
                .spec
                .and_then(|s| s.replicas)
                == Some(3))
            .then_some(()))
        }
    })
    .await
    .unwrap();
}

/// Read-modify-write of a MediaCluster's spec, retried on 409 Conflict: the
/// operator writes status at any moment, which moves the resourceVersion a
/// plain get-then-replace carries (client-go's `RetryOnConflict`).
#[allow(clippy::panic)] // a test helper: a failed update fails the test
async fn update_spec(api: &Api<MediaCluster>, name: &str, change: impl Fn(&mut MediaCluster)) {
    for _ in 0..10 {
        let mut mc = api.get(name).await.unwrap();
        change(&mut mc);
        mc.metadata.managed_fields = None;
        match api.replace(name, &PostParams::default(), &mc).await {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("updating MediaCluster {name}: {e}"),
        }
    }
    panic!("updating MediaCluster {name}: still conflicting after 10 tries");
}
