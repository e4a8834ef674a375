//! The local node works: pods run, Services route, names resolve.
//!
//! On `Cluster::with_node()` (tests/cluster/up --node): a pod of the locally
//! built pause image runs; a pod of Fleetcast's media image becomes Ready
//! behind its readiness probe; its Service answers on the `ClusterIP` from the
//! host (kube-proxy's rules); `CoreDNS` (itself a pod reading the API through
//! the `kubernetes` Service) resolves the Service's name.

use std::time::Duration;

use anyhow::Context;
use fleetcast_e2e::images;
use fleetcast_e2e::kube_util::{
    describe_pods, pod_phase, resolve, scheduling_report, service_address,
};
use fleetcast_e2e::{POD_PATIENCE, kube_util};
use fleetcast_testkit::cluster::Cluster;
use fleetcast_testkit::wait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

#[tokio::test]
async fn a_pod_of_the_local_pause_image_runs() -> anyhow::Result<()> {
    let cluster = Cluster::with_node().await?;
    let pause_image = cluster
        .node()
        .context("this test needs the local node (KUBECONFIG unset)")?
        .pause_image
        .clone();
    let ns = cluster.namespace("node-pause").await?;
    let client = cluster.client().await?;
    let pods: Api<Pod> = Api::namespaced(client, ns.name());
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "pause" },
        "spec": {
            "containers": [{ "name": "pause", "image": pause_image, "imagePullPolicy": "Never" }],
            "terminationGracePeriodSeconds": 0
        }
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let result = wait::until("the pause pod to be Running", POD_PATIENCE, || async {
        let pod = pods.get("pause").await?;
        Ok((pod_phase(&pod) == "Running").then_some(pod))
    })
    .await;
    let pod = match result {
        Ok(pod) => pod,
        Err(e) => {
            let pod = pods.get("pause").await?;
            let report = scheduling_report(&cluster, ns.name(), "").await;
            return Err(e.context(format!("{}\n{report}", describe_pods(&[pod]))));
        }
    };
    let status = pod.status.context("pod status")?;
    let ip = status.pod_ip.context("the running pod has no IP")?;
    assert!(
        ip.starts_with("10.244."),
        "pod IP {ip} is not from the node's pod CIDR"
    );
    assert_eq!(
        pod.spec.and_then(|s| s.node_name).as_deref(),
        Some("fleetcast-node")
    );
    Ok(())
}

#[tokio::test]
async fn a_media_pod_is_ready_behind_a_service_that_routes_and_resolves() -> anyhow::Result<()> {
    let cluster = Cluster::with_node().await?;
    let images = images::ensure(&cluster).await?;
    let node = cluster
        .node()
        .context("this test needs the local node (KUBECONFIG unset)")?
        .clone();
    let ns = cluster.namespace("node-svc").await?;
    let client = cluster.client().await?;

    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "media" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "media" } },
            "template": {
                "metadata": { "labels": { "app": "media" } },
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "media",
                        "image": images.media,
                        "imagePullPolicy": "Never",
                        "args": ["origin", "--rtmp", "0.0.0.0:1935", "--http", "0.0.0.0:8080", "--data", "/tmp/data"],
                        "ports": [{ "name": "http", "containerPort": 8080 }],
                        "readinessProbe": { "httpGet": { "path": "/healthz", "port": 8080 }, "periodSeconds": 1 }
                    }]
                }
            }
        }
    }))?;
    Api::<Deployment>::namespaced(client.clone(), ns.name())
        .create(&PostParams::default(), &deployment)
        .await?;
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": "media" },
        "spec": {
            "selector": { "app": "media" },
            "ports": [{ "name": "http", "port": 80, "targetPort": 8080 }]
        }
    }))?;
    Api::<Service>::namespaced(client.clone(), ns.name())
        .create(&PostParams::default(), &service)
        .await?;

    kube_util::wait_ready_pods(&client, ns.name(), "app=media", 1, POD_PATIENCE).await?;
    let (ip, port) = service_address(&client, ns.name(), "media", "http").await?;

    // From the host through kube-proxy's DNAT to the pod.
    let url = format!("http://{ip}:{port}/healthz");
    let body = wait::until(
        &format!("GET {url} through the ClusterIP"),
        Duration::from_mins(1),
        || async {
            let out = tokio::process::Command::new("curl")
                .args(["-sf", "--max-time", "3", &url])
                .output()
                .await?;
            Ok(out
                .status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
        },
    )
    .await?;
    assert!(!body.trim().is_empty(), "empty /healthz body from {url}");

    // CoreDNS resolves the Service's name to its ClusterIP, and the API
    // server's Service to 10.96.0.1 (CoreDNS reads both from the API, which
    // it reaches through that Service from its pod).
    let name = format!("media.{}.svc.cluster.local", ns.name());
    let got = wait::until(
        &format!("{name} to resolve at {}", node.dns),
        Duration::from_mins(1),
        || async {
            let got = resolve(&node.dns, &name).await?;
            Ok((!got.is_empty()).then_some(got))
        },
    )
    .await?;
    assert_eq!(got, vec![ip.clone()], "{name} resolved to {got:?}");
    assert_eq!(
        resolve(&node.dns, "kubernetes.default.svc.cluster.local").await?,
        vec!["10.96.0.1".to_owned()]
    );
    Ok(())
}
