//! The operator works under exactly the RBAC of charts/rbac/: the binary runs
//! with a token of that ServiceAccount (from the TokenRequest API), creates,
//! prunes, writes status and Events, and holds its Lease; and it is really
//! that account (it may not read Secrets).

// Test crate: panics are the failure reports.
#![allow(clippy::unwrap_used, clippy::doc_markdown, clippy::too_many_lines)]

mod common;

use std::io::Write as _;
use std::process::Stdio;

use common::{OperatorProcess, WAIT, create, install_crd, mc_from_yaml, scratch_file};
use fleetcast_operator::crd::MediaCluster;
use fleetcast_testkit::cluster::Cluster;
use fleetcast_testkit::wait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

/// The RBAC documents, moved into `namespace` with cluster-scoped names made unique.
fn rbac_for(namespace: &str) -> Vec<Value> {
    let text =
        std::fs::read_to_string(fleetcast_testkit::workspace_root().join("charts/rbac/rbac.yaml"))
            .unwrap();
    let unique = format!("fleetcast-operator-{namespace}");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let mut v: Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = v["kind"].as_str().unwrap().to_owned();
            if v["metadata"].get("namespace").is_some() {
                v["metadata"]["namespace"] = json!(namespace);
            }
            if kind == "ClusterRole" || kind == "ClusterRoleBinding" {
                v["metadata"]["name"] = json!(unique);
            }
            if kind == "ClusterRoleBinding" {
                v["roleRef"]["name"] = json!(unique);
            }
            if let Some(subjects) = v.get_mut("subjects").and_then(Value::as_array_mut) {
                for s in subjects {
                    s["namespace"] = json!(namespace);
                }
            }
            v
        })
        .collect()
}

fn kubectl_stdin(cluster: &Cluster, args: &[&str], input: &str) -> String {
    let mut child = cluster
        .kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deletes the cluster-scoped objects the test made, even when it fails.
struct ClusterScoped<'a>(&'a Cluster, String);

impl Drop for ClusterScoped<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .kubectl()
            .args([
                "delete",
                "clusterrole,clusterrolebinding",
                &self.1,
                "--ignore-not-found",
            ])
            .output();
    }
}

#[tokio::test]
async fn operator_works_under_exactly_its_role() {
    let cluster = Cluster::shared().await.expect("test cluster");
    install_crd(&cluster).await.expect("CRD");
    let ns = cluster.namespace("op-rbac").await.expect("namespace");
    let admin = cluster.client().await.expect("client");

    let docs = rbac_for(&ns.name);
    let _cleanup = ClusterScoped(&cluster, format!("fleetcast-operator-{}", ns.name));
    let mut yaml = String::new();
    for doc in &docs {
        yaml.push_str("---\n");
        yaml.push_str(&serde_yaml_ng::to_string(doc).unwrap());
    }
    kubectl_stdin(&cluster, &["apply", "-f", "-"], &yaml);
    let token = kubectl_stdin(
        &cluster,
        &[
            "create",
            "token",
            "fleetcast-operator",
            "-n",
            &ns.name,
            "--duration",
            "1h",
        ],
        "",
    );

    // A kubeconfig with the admin's cluster entry and the ServiceAccount's token.
    let admin_config = Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let cluster_entry =
        serde_json::to_value(admin_config.clusters[0].cluster.as_ref().unwrap()).unwrap();
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster_entry}],
        "users": [{"name": "operator", "user": {"token": token.trim()}}],
        "contexts": [{"name": "operator", "context": {"cluster": "test", "user": "operator"}}],
        "current-context": "operator",
    });
    let path = scratch_file(&format!("{}-operator.kubeconfig", ns.name));
    std::fs::write(&path, serde_json::to_string(&kubeconfig).unwrap()).unwrap();

    // It really is the ServiceAccount: Secrets are not in its role.
    let as_operator = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&path).unwrap(),
            &KubeConfigOptions::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(as_operator, &ns.name);
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("the operator's account can list Secrets: {other:?}"),
    }

    let operator = OperatorProcess::start(&path, &ns.name, "rbac-operator")
        .await
        .unwrap();
    create(
        &admin,
        &ns.name,
        &mc_from_yaml(
            "apiVersion: fleetcast.io/v1alpha1\nkind: MediaCluster\nmetadata: { name: live }\nspec:\n  balancing: { mode: redirect }\n  edges: [ { name: london }, { name: tokyo, autoscaling: { maxReplicas: 3, metric: cpu, target: 60 }, resources: { requests: { cpu: 100m } } } ]\n",
        ),
    )
    .await
    .unwrap();

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns.name);
    let mcs: Api<MediaCluster> = Api::namespaced(admin.clone(), &ns.name);
    wait::until(
        "children and status written by the ServiceAccount",
        WAIT,
        || {
            let (d, m) = (deployments.clone(), mcs.clone());
            async move {
                let pools = d.get_opt("live-edge-tokyo").await?.is_some()
                    && d.get_opt("live-edge-london").await?.is_some();
                let status = m
                    .get("live")
                    .await?
                    .status
                    .is_some_and(|s| s.origin.is_some());
                Ok((pools && status).then_some(()))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.output()));

    // Pruning (delete) under the role too.
    mcs.patch(
        "live",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"edges": [{"name": "london"}]}})),
    )
    .await
    .unwrap();
    wait::until("tokyo pruned by the ServiceAccount", WAIT, || {
        let d = deployments.clone();
        async move { Ok(d.get_opt("live-edge-tokyo").await?.is_none().then_some(())) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.output()));

    // The Pruned Event is written after the deletes return, so it may trail them.
    let events: Api<Event> = Api::namespaced(admin.clone(), &ns.name);
    wait::until("Created and Pruned Events", WAIT, || {
        let events = events.clone();
        async move {
            let reasons: Vec<String> = events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter_map(|e| e.reason)
                .collect();
            Ok(
                (reasons.iter().any(|r| r == "Created") && reasons.iter().any(|r| r == "Pruned"))
                    .then_some(()),
            )
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.output()));
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &ns.name);
    let holder = leases
        .get("fleetcast-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder.as_deref(), Some("rbac-operator"));
    let (_, metrics) = operator.get("/metrics").await.unwrap();
    assert!(
        !metrics.contains("fleetcast_operator_reconcile_errors_total{"),
        "errors under the role:\n{metrics}\n{}",
        operator.output()
    );
    assert!(
        !operator.output().contains("forbidden"),
        "{}",
        operator.output()
    );
}

/// The chart's role, impersonated as the operator's ServiceAccount, cannot
/// read Secrets anywhere (the pods mount them by name; the operator never
/// reads one), while the objects it does manage, NetworkPolicies included,
/// are open to it.
#[tokio::test]
async fn operator_role_cannot_read_secrets() {
    let cluster = Cluster::shared().await.expect("test cluster");
    let ns = cluster.namespace("op-nosecret").await.expect("namespace");
    let admin = cluster.client().await.expect("client");
    let _cleanup = ClusterScoped(&cluster, format!("fleetcast-operator-{}", ns.name));
    let mut yaml = String::new();
    for doc in rbac_for(&ns.name) {
        yaml.push_str("---\n");
        yaml.push_str(&serde_yaml_ng::to_string(&doc).unwrap());
    }
    kubectl_stdin(&cluster, &["apply", "-f", "-"], &yaml);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "stream-keys"},
        "stringData": {"live.cam1": "k1"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin, &ns.name)
        .create(&kube::api::PostParams::default(), &secret)
        .await
        .unwrap();

    let mut config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(cluster.kubeconfig()).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.auth_info.impersonate = Some(format!(
        "system:serviceaccount:{}:fleetcast-operator",
        ns.name
    ));
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".to_owned(),
        format!("system:serviceaccounts:{}", ns.name),
        "system:authenticated".to_owned(),
    ]);
    let operator = kube::Client::try_from(config).unwrap();

    let forbidden = |what: &str, result: kube::Result<()>| match result {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{what}: {status:?}"),
        other => panic!("the operator's role can {what}: {other:?}"),
    };
    let here: Api<Secret> = Api::namespaced(operator.clone(), &ns.name);
    let everywhere: Api<Secret> = Api::all(operator.clone());
    forbidden("get a Secret", here.get("stream-keys").await.map(|_| ()));
    forbidden(
        "list Secrets in a namespace",
        here.list(&ListParams::default()).await.map(|_| ()),
    );
    forbidden(
        "list Secrets in every namespace",
        everywhere.list(&ListParams::default()).await.map(|_| ()),
    );
    forbidden(
        "watch Secrets",
        here.watch(&kube::api::WatchParams::default(), "0")
            .await
            .map(|_| ()),
    );
    // The same identity may do its job: the 403s are about Secrets, not a broken login.
    Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(operator.clone(), &ns.name)
        .list(&ListParams::default())
        .await
        .expect("the role lists NetworkPolicies");
    Api::<k8s_openapi::api::core::v1::ConfigMap>::all(operator)
        .list(&ListParams::default())
        .await
        .expect("the role lists ConfigMaps");
}
