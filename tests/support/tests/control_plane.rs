//! Proof that the tests' Kubernetes is real: each test needs a behaviour a
//! fake API server would not have (CRD establishment, the controller
//! manager's controllers, the scheduler, the garbage collector, kubectl and
//! helm speaking to it). Each runs in its own namespace.

use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, ensure};
use fleetcast_testkit::cluster::Cluster;
use fleetcast_testkit::wait;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, PostParams,
};
use kube::{Api, ResourceExt};
use serde_json::json;

/// Upper bound on waiting for the control plane to act; never a speed check.
const PATIENCE: Duration = Duration::from_secs(90);

fn run(mut command: Command) -> anyhow::Result<String> {
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    ensure!(
        status.success(),
        "{command:?} failed ({status}):\n{stdout}\n{}",
        String::from_utf8_lossy(&stderr)
    );
    Ok(stdout)
}

/// Deletes a cluster-scoped CRD when dropped (namespaces do not hold them).
struct CrdGuard<'a>(&'a Cluster, String);

impl Drop for CrdGuard<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .kubectl()
            .args([
                "delete",
                "crd",
                &self.1,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output();
    }
}

#[tokio::test]
async fn a_crd_becomes_established_and_its_objects_are_served() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let ns = cluster.namespace("crd").await?;
    let client = cluster.client().await?;
    // A group of this test's own, so runs and other tests never collide.
    let group = format!("{}.test.fleetcast.io", ns.name);
    let crd_name = format!("widgets.{group}");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": crd_name },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget" },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "properties": { "size": { "type": "integer", "minimum": 1 } }
                    }}
                }}
            }]
        }
    }))?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd).await?;
    let _guard = CrdGuard(&cluster, crd_name.clone());

    wait::until("the CRD to be Established", PATIENCE, || async {
        let crd = crds.get(&crd_name).await?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        Ok(established.then_some(()))
    })
    .await?;

    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(&group, "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, &ns.name, &resource);
    let widget = DynamicObject::new("gear", &resource).data(json!({ "spec": { "size": 3 } }));
    // Right after Established the storage can still be warming up; retry.
    wait::until("the first Widget to be created", PATIENCE, || async {
        Ok(Some(widgets.create(&PostParams::default(), &widget).await?))
    })
    .await?;
    let fetched = widgets.get("gear").await?;
    assert_eq!(fetched.data["spec"]["size"], json!(3));
    assert!(fetched.uid().is_some(), "the API server assigns a uid");

    // The schema is enforced: a real API server rejects size 0.
    let bad = DynamicObject::new("broken", &resource).data(json!({ "spec": { "size": 0 } }));
    let err = widgets
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("size 0 violates minimum: 1");
    assert!(err.to_string().contains("spec.size"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_deployment_gets_a_replicaset_and_pods_that_wait_for_a_node() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let ns = cluster.namespace("deploy").await?;
    let client = cluster.client().await?;
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                // No node carries this label, so the pods wait whether or
                // not the run's node (tests/cluster/up --node) is up.
                "spec": {
                    "nodeSelector": { "fleetcast.io/test-no-such-node": "true" },
                    "containers": [{ "name": "web", "image": "registry.invalid/web:1" }]
                }
            }
        }
    }))?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let created = deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    let deployment_uid = created.uid().context("deployment uid")?;

    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    let rs = wait::until("a ReplicaSet owned by the Deployment", PATIENCE, || async {
        let list = replicasets.list(&ListParams::default()).await?;
        Ok(list.items.into_iter().find(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| o.uid == deployment_uid)
        }))
    })
    .await?;
    let rs_uid = rs.uid().context("replicaset uid")?;

    let pods: Api<Pod> = Api::namespaced(client, &ns.name);
    let owned = wait::until("2 Pods owned by the ReplicaSet", PATIENCE, || async {
        let list = pods.list(&ListParams::default()).await?;
        let owned: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| p.owner_references().iter().any(|o| o.uid == rs_uid))
            .collect();
        Ok((owned.len() == 2).then_some(owned))
    })
    .await?;
    for pod in &owned {
        assert_eq!(pod.labels().get("app").map(String::as_str), Some("web"));
    }

    // With no matching node, the scheduler reports each pod as Unschedulable.
    wait::until(
        "the scheduler to mark both Pods Unschedulable",
        PATIENCE,
        || async {
            let list = pods.list(&ListParams::default()).await?;
            let unschedulable = list
                .items
                .iter()
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| {
                                c.type_ == "PodScheduled"
                                    && c.status == "False"
                                    && c.reason.as_deref() == Some("Unschedulable")
                            })
                        })
                })
                .count();
            Ok((unschedulable == 2).then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let ns = cluster.namespace("gc").await?;
    let client = cluster.client().await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client, &ns.name);

    let owner = configmaps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".into()),
                    ..ObjectMeta::default()
                },
                ..ConfigMap::default()
            },
        )
        .await?;
    let reference = OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.uid().context("owner uid")?,
        ..OwnerReference::default()
    };
    for name in ["dependent-a", "dependent-b"] {
        configmaps
            .create(
                &PostParams::default(),
                &ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(name.into()),
                        owner_references: Some(vec![reference.clone()]),
                        ..ObjectMeta::default()
                    },
                    ..ConfigMap::default()
                },
            )
            .await?;
    }
    let bystander = ConfigMap {
        metadata: ObjectMeta {
            name: Some("bystander".into()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    configmaps
        .create(&PostParams::default(), &bystander)
        .await?;

    configmaps
        .delete("owner", &DeleteParams::background())
        .await?;
    wait::until(
        "the garbage collector to delete both dependents",
        PATIENCE,
        || async {
            let a = configmaps.get_opt("dependent-a").await?;
            let b = configmaps.get_opt("dependent-b").await?;
            Ok((a.is_none() && b.is_none()).then_some(()))
        },
    )
    .await?;
    assert!(
        configmaps.get_opt("bystander").await?.is_some(),
        "an object without the owner reference stays"
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_talks_to_the_cluster() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let ns = cluster.namespace("kubectl").await?;

    let mut get_ns = cluster.kubectl();
    get_ns.args(["get", "namespaces", "-o", "name"]);
    let namespaces = run(get_ns)?;
    assert!(
        namespaces
            .lines()
            .any(|l| l == format!("namespace/{}", ns.name)),
        "{namespaces}"
    );

    let dir = tempfile::tempdir()?;
    let manifest = dir.path().join("settings.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  greeting: hello\n",
    )?;
    let mut apply = cluster.kubectl();
    apply.args(["apply", "-n", &ns.name, "-f"]).arg(&manifest);
    let applied = run(apply)?;
    assert!(applied.contains("configmap/settings created"), "{applied}");

    let mut get = cluster.kubectl();
    get.args([
        "get",
        "configmap",
        "settings",
        "-n",
        &ns.name,
        "-o",
        "jsonpath={.data.greeting}",
    ]);
    assert_eq!(run(get)?, "hello");

    // The binaries carry the pinned version (set at link time by tests/cluster/build).
    let mut version = cluster.kubectl();
    version.args(["version", "-o", "json"]);
    let version: serde_json::Value = serde_json::from_str(&run(version)?)?;
    let server = version["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or("");
    let client = version["clientVersion"]["gitVersion"]
        .as_str()
        .unwrap_or("");
    assert_eq!(client, "v1.35.4", "{version}");
    if cluster.is_external() {
        assert!(server.starts_with("v1."), "{version}");
    } else {
        assert_eq!(server, "v1.35.4", "{version}");
    }
    Ok(())
}

#[tokio::test]
async fn helm_installs_and_uninstalls_a_chart() -> anyhow::Result<()> {
    let cluster = Cluster::shared().await?;
    let ns = cluster.namespace("helm").await?;
    let client = cluster.client().await?;

    let dir = tempfile::tempdir()?;
    let chart = dir.path().join("tiny");
    std::fs::create_dir_all(chart.join("templates"))?;
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    )?;
    std::fs::write(chart.join("values.yaml"), "colour: blue\n")?;
    std::fs::write(
        chart.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\n\
         data:\n  colour: {{ .Values.colour | quote }}\n",
    )?;
    // Keep helm's own config and cache in the temp dir, not the user's home.
    let helm = |args: &[&str]| {
        let mut command = cluster.helm();
        command
            .env("HELM_CONFIG_HOME", dir.path().join("config"))
            .env("HELM_CACHE_HOME", dir.path().join("cache"))
            .env("HELM_DATA_HOME", dir.path().join("data"))
            .args(args);
        command
    };

    let chart_path = chart.to_string_lossy().into_owned();
    run(helm(&[
        "install",
        "demo",
        &chart_path,
        "--namespace",
        &ns.name,
        "--set",
        "colour=green",
    ]))?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client, &ns.name);
    let installed = configmaps.get("demo-settings").await?;
    assert_eq!(
        installed
            .data
            .unwrap_or_default()
            .get("colour")
            .map(String::as_str),
        Some("green")
    );
    assert_eq!(
        installed
            .metadata
            .labels
            .unwrap_or_default()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("Helm")
    );
    let listed = run(helm(&["list", "--namespace", &ns.name, "-o", "json"]))?;
    let listed: serde_json::Value = serde_json::from_str(&listed)?;
    assert_eq!(listed[0]["name"], "demo", "{listed}");
    assert_eq!(listed[0]["status"], "deployed", "{listed}");

    run(helm(&["uninstall", "demo", "--namespace", &ns.name]))?;
    wait::until(
        "helm uninstall to remove the ConfigMap",
        PATIENCE,
        || async {
            Ok(configmaps
                .get_opt("demo-settings")
                .await?
                .is_none()
                .then_some(()))
        },
    )
    .await?;
    let listed = run(helm(&["list", "--namespace", &ns.name, "-o", "json"]))?;
    assert_eq!(listed.trim(), "[]");
    Ok(())
}
