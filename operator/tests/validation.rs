//! The API server itself refuses bad MediaClusters with the CRD's CEL
//! messages, through the API (422) and through `kubectl apply`.

// Test crate: panics are the failure reports; kinds are prose in docs.
#![allow(clippy::unwrap_used, clippy::doc_markdown, clippy::too_many_lines)]

mod common;

use std::io::Write as _;
use std::process::Stdio;

use common::{install_crd, mc_from_yaml};
use fleetcast_operator::crd::MediaCluster;
use fleetcast_testkit::cluster::Cluster;
use kube::api::{Api, PostParams};

fn manifest(name: &str, edges: &str, origin: &str) -> String {
    format!(
        "apiVersion: fleetcast.io/v1alpha1\nkind: MediaCluster\nmetadata: {{ name: {name} }}\nspec:\n  origin: {origin}\n  edges: {edges}\n"
    )
}

/// (what, manifest, message the API server must give)
fn cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "duplicate pool names",
            manifest("dup", "[{name: london}, {name: london}]", "{}"),
            "edge pool names must be unique within a MediaCluster",
        ),
        (
            "unknown upstream",
            manifest("unknown", "[{name: london, upstream: paris}]", "{}"),
            "every edge pool's upstream must be \"origin\" or the name of another pool in spec.edges",
        ),
        (
            "own upstream",
            manifest("selfish", "[{name: london, upstream: london}]", "{}"),
            "an edge pool cannot be its own upstream",
        ),
        (
            "min above max",
            manifest(
                "minmax",
                "[{name: london, autoscaling: {minReplicas: 5, maxReplicas: 2, target: 100}}]",
                "{}",
            ),
            "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas",
        ),
        (
            "pool name not a DNS label",
            manifest("dns", "[{name: London_1}]", "{}"),
            "an edge pool name must be a DNS label",
        ),
        (
            "pool named origin",
            manifest("reserved", "[{name: origin}]", "{}"),
            "\\\"origin\\\" is reserved",
        ),
        (
            "cpu scaling without a cpu request",
            manifest(
                "cpu",
                "[{name: london, autoscaling: {maxReplicas: 4, metric: cpu, target: 70}}]",
                "{}",
            ),
            "autoscaling on metric cpu needs resources.requests.cpu",
        ),
        (
            "shared storage without a claim",
            manifest("storage", "[]", "{storage: {type: shared}}"),
            "storage type shared needs claimName",
        ),
        (
            "cluster name with a dot",
            manifest("a.b", "[]", "{}"),
            "a MediaCluster name must be a DNS label of at most 40 characters",
        ),
        (
            "names too long together",
            manifest(
                &format!("a{}", "b".repeat(39)),
                "[{name: abcdefghijklmnopqrs}]",
                "{}",
            ),
            "MediaCluster name and edge pool name together must be at most 51 characters",
        ),
        (
            "publish webhook that is not http",
            secured(
                "hookftp",
                "{publishWebhook: {url: 'ftp://hooks.example/publish'}}",
            ),
            "webhook url must be an http://HOST[:PORT]/PATH URL",
        ),
        (
            "play webhook without a host",
            secured("hooknohost", "{playWebhook: {url: 'http:///play'}}"),
            "webhook url must be an http://HOST[:PORT]/PATH URL",
        ),
        (
            "webhook timeout above the bound",
            secured(
                "hooktimeout",
                "{playWebhook: {url: 'http://hooks.example/play', timeoutMs: 600000}}",
            ),
            "timeoutMs in body should be less than or equal to 30000",
        ),
        (
            "write interval above the bound",
            "apiVersion: fleetcast.io/v1alpha1\nkind: MediaCluster\nmetadata: { name: slowwrites }\nspec:\n  playback: { writeIntervalMs: 5000 }\n".to_owned(),
            "writeIntervalMs in body should be less than or equal to 1000",
        ),
    ]
}

fn secured(name: &str, security: &str) -> String {
    format!(
        "apiVersion: fleetcast.io/v1alpha1\nkind: MediaCluster\nmetadata: {{ name: {name} }}\nspec:\n  security: {security}\n"
    )
}

#[tokio::test]
async fn api_server_rejects_bad_specs_with_their_messages() {
    let cluster = Cluster::shared().await.expect("test cluster");
    install_crd(&cluster).await.expect("CRD");
    let ns = cluster.namespace("op-valid").await.expect("namespace");
    let client = cluster.client().await.expect("client");
    let api: Api<MediaCluster> = Api::namespaced(client, &ns.name);
    for (what, yaml, message) in cases() {
        let mc = mc_from_yaml(&yaml);
        let err = api
            .create(&PostParams::default(), &mc)
            .await
            .expect_err(&format!("{what}: the API server accepted it"));
        let kube::Error::Api(status) = err else {
            panic!("{what}: not an API error: {err}");
        };
        assert_eq!(status.code, 422, "{what}: {status:?}");
        let unescaped = message.replace("\\\"", "\"");
        assert!(
            status.message.contains(&unescaped),
            "{what}: {:?} lacks {unescaped:?}",
            status.message
        );
    }
    // The good example goes through.
    let good =
        std::fs::read_to_string(fleetcast_testkit::workspace_root().join("examples/live.yaml"))
            .unwrap();
    api.create(&PostParams::default(), &mc_from_yaml(&good))
        .await
        .expect("examples/live.yaml is accepted");
}

#[tokio::test]
async fn kubectl_apply_prints_the_messages() {
    let cluster = Cluster::shared().await.expect("test cluster");
    install_crd(&cluster).await.expect("CRD");
    let ns = cluster.namespace("op-kubectl").await.expect("namespace");
    for (what, yaml, message) in cases() {
        let mut child = cluster
            .kubectl()
            .args(["apply", "-n", &ns.name, "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{what}: kubectl apply succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr).replace("\\\"", "\"");
        let message = message.replace("\\\"", "\"");
        assert!(
            stderr.contains(&message),
            "{what}: {stderr:?} lacks {message:?}"
        );
    }
}
