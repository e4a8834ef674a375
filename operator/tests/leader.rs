//! Two operator processes (the real binary) on one Lease: one leads, the
//! other stays idle; when the leader is killed the standby takes over, and a
//! leader stopped with SIGTERM releases the Lease.

// Test crate: panics are the failure reports.
#![allow(clippy::unwrap_used, clippy::doc_markdown, clippy::too_many_lines)]
// Metric values compared here are small integers, exact in f64.
#![allow(clippy::float_cmp)]

mod common;

use common::{OperatorProcess, WAIT, create, install_crd, mc_from_yaml};
use fleetcast_operator::crd::MediaCluster;
use fleetcast_testkit::cluster::Cluster;
use fleetcast_testkit::wait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

async fn holder(leases: &Api<Lease>) -> anyhow::Result<Option<String>> {
    Ok(leases
        .get_opt("fleetcast-operator")
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

#[tokio::test]
async fn one_leader_one_idle_standby_and_failover() {
    let cluster = Cluster::shared().await.expect("test cluster");
    install_crd(&cluster).await.expect("CRD");
    let ns = cluster.namespace("op-leader").await.expect("namespace");
    let client = cluster.client().await.expect("client");
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);

    let mut a = OperatorProcess::start(cluster.kubeconfig(), &ns.name, "replica-a")
        .await
        .unwrap();
    let mut b = OperatorProcess::start(cluster.kubeconfig(), &ns.name, "replica-b")
        .await
        .unwrap();

    let leader_id = wait::until("a Lease holder", WAIT, || {
        let leases = leases.clone();
        async move { holder(&leases).await }
    })
    .await
    .unwrap();
    let (leader, standby) = if leader_id == a.identity {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert_eq!(leader_id, leader.identity);
    wait::until("the leader to report leadership", WAIT, || {
        let addr = leader.addr;
        async move {
            let (_, body) = common::http_get(addr, "/metrics").await?;
            Ok(body.contains("fleetcast_operator_leader 1").then_some(()))
        }
    })
    .await
    .unwrap();

    create(
        &client,
        &ns.name,
        &mc_from_yaml("apiVersion: fleetcast.io/v1alpha1\nkind: MediaCluster\nmetadata: { name: live }\nspec:\n  edges: [ { name: london } ]\n"),
    )
    .await
    .unwrap();
    wait::until("the leader to create the pool", WAIT, || {
        let d = deployments.clone();
        async move { Ok(d.get_opt("live-edge-london").await?.map(|_| ())) }
    })
    .await
    .unwrap();
    // Counted when the reconcile finishes, a moment after the objects exist.
    wait::until("the leader to count its reconciles", WAIT, || {
        let addr = leader.addr;
        async move {
            let (_, body) = common::http_get(addr, "/metrics").await?;
            Ok((!body.contains("fleetcast_operator_reconciles_total 0")).then_some(()))
        }
    })
    .await
    .unwrap();
    // The standby is alive, ready, and has written nothing.
    assert_eq!(standby.get("/healthz").await.unwrap().0, 200);
    assert_eq!(standby.get("/readyz").await.unwrap().0, 200);
    assert_eq!(
        standby.metric("fleetcast_operator_leader").await.unwrap(),
        0.0
    );
    assert_eq!(
        standby
            .metric("fleetcast_operator_reconciles_total")
            .await
            .unwrap(),
        0.0,
        "{}",
        standby.output()
    );

    // Kill the leader without letting it release: the standby takes over once the lease expires.
    leader.kill();
    let new_holder = wait::until("the standby to take the Lease", WAIT, || {
        let leases = leases.clone();
        let old = leader_id.clone();
        async move { Ok(holder(&leases).await?.filter(|h| *h != old)) }
    })
    .await
    .unwrap();
    assert_eq!(new_holder, standby.identity);
    let lease = leases
        .get("fleetcast-operator")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert!(lease.lease_transitions.unwrap_or(0) >= 1, "{lease:?}");

    // The new leader reconciles: a new pool appears.
    let mcs: Api<MediaCluster> = Api::namespaced(client.clone(), &ns.name);
    mcs.patch(
        "live",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"edges": [{"name": "london"}, {"name": "tokyo"}]}})),
    )
    .await
    .unwrap();
    wait::until("the new leader to create tokyo", WAIT, || {
        let d = deployments.clone();
        async move { Ok(d.get_opt("live-edge-tokyo").await?.map(|_| ())) }
    })
    .await
    .unwrap();
    assert_eq!(
        standby.metric("fleetcast_operator_leader").await.unwrap(),
        1.0
    );

    // SIGTERM: a clean exit that hands the Lease back at once.
    let status = standby.terminate().unwrap();
    assert!(status.success(), "exit {status:?}\n{}", standby.output());
    assert_eq!(
        holder(&leases).await.unwrap(),
        None,
        "the Lease is released"
    );
    assert!(
        standby.output().contains("released the Lease"),
        "{}",
        standby.output()
    );
}
