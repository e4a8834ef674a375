//! The Helm chart (charts/fleetcast) on the real control plane: it lints, its
//! rendered objects pass the API server's validation, bad values fail at
//! install with a message, and install/upgrade/uninstall leaves nothing of
//! the release behind. The chart's CRD and charts/rbac/rbac.yaml are kept equal
//! to their sources of truth.
//!
//! Without a node the operator's pods stay Pending: these tests look at the
//! objects, not at readiness (the end-to-end tests run the pods).

// Test crate: panics are the failure reports.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::doc_markdown,
    clippy::too_many_lines
)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use fleetcast_testkit::cluster::Cluster;
use fleetcast_testkit::{wait, workspace_root};
use serde_json::Value;

const CHART: &str = "charts/fleetcast";
const RBAC_FILE: &str = "charts/rbac/rbac.yaml";
/// The lines charts/rbac/rbac.yaml starts with, before the rendered templates.
const RBAC_HEADER: &str = "\
# The operator's ServiceAccount and least-privilege RBAC for use without Helm
# (README: kubectl apply -f charts/rbac/). Generated from the chart's templates
# (charts/fleetcast/templates/{serviceaccount,rbac}.yaml); a test keeps it equal.
# Regenerate with `make rbac-file`.
";

fn chart() -> PathBuf {
    workspace_root().join(CHART)
}

/// Runs `command` with `input` on stdin; returns its output whatever the exit status.
fn run(mut command: Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `command` and returns stdout; fails the test with stderr when it fails.
fn ok(command: Command) -> String {
    let what = format!("{command:?}");
    let out = run(command, "");
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn helm(cluster: &Cluster, args: &[&str]) -> Command {
    let mut command = cluster.helm();
    command.args(args);
    command
}

/// `helm template` of the chart with extra arguments.
fn template(cluster: &Cluster, namespace: &str, extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        "fleetcast",
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
    ];
    args.extend_from_slice(extra);
    ok(helm(cluster, &args))
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

#[test]
fn chart_crd_is_the_generated_crd() {
    let root = workspace_root();
    let top = std::fs::read(root.join("crds/fleetcast.io_mediaclusters.yaml")).unwrap();
    let copy = std::fs::read(
        root.join(CHART)
            .join("crds/fleetcast.io_mediaclusters.yaml"),
    )
    .unwrap();
    assert!(
        top == copy,
        "{CHART}/crds/ differs from crds/; copy it:\n\n    cp crds/fleetcast.io_mediaclusters.yaml {CHART}/crds/\n"
    );
}

#[tokio::test]
async fn chart_lints_and_the_rbac_file_is_the_rendered_chart() {
    let cluster = Cluster::shared().await.expect("test cluster");
    ok(helm(
        &cluster,
        &["lint", "--strict", chart().to_str().unwrap()],
    ));

    let rendered = template(
        &cluster,
        "fleetcast-system",
        &[
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/rbac.yaml",
        ],
    );
    let on_disk = std::fs::read_to_string(workspace_root().join(RBAC_FILE)).unwrap();
    assert!(
        on_disk == format!("{RBAC_HEADER}{rendered}"),
        "{RBAC_FILE} is not the chart's RBAC; regenerate it with\n\n    make rbac-file\n"
    );
}

#[tokio::test]
async fn rendered_chart_is_accepted_by_the_api_server() {
    let cluster = Cluster::shared().await.expect("test cluster");
    let ns = cluster.namespace("chart-dry").await.expect("namespace");
    // Defaults; every option on; a namespaced watch with RBAC and ServiceAccount left out.
    let variants: [&[&str]; 3] = [
        &["--include-crds"],
        &[
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "replicas=3",
            "--set",
            "podLabels.team=video",
            "--set",
            "imagePullSecrets[0].name=regcred",
            "--set",
            "metrics.service.type=NodePort",
            "--set",
            "extraArgs[0]=--lease-namespace=ops",
            "--set",
            "extraEnv[0].name=RUST_BACKTRACE",
            "--set-string",
            "extraEnv[0].value=1",
        ],
        &[
            "--set",
            "watchNamespace=video",
            "--set",
            "rbac.create=false",
            "--set",
            "serviceAccount.create=false",
            "--set",
            "serviceAccount.name=existing",
            "--set",
            "replicas=1",
        ],
    ];
    for extra in variants {
        let yaml = template(&cluster, &ns.name, extra);
        let mut kubectl = cluster.kubectl();
        kubectl.args(["apply", "--dry-run=server", "-n", &ns.name, "-f", "-"]);
        let out = run(kubectl, &yaml);
        assert!(
            out.status.success(),
            "server-side dry run of the chart with {extra:?}:\n{}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // What the defaults render: a hardened operator pod of 2 leader-elected replicas.
    let rendered = docs(&template(&cluster, &ns.name, &[]));
    let kinds: Vec<&str> = rendered
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Pod",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(!kinds.contains(&"ServiceMonitor") && !kinds.contains(&"ConfigMap"));
    let deployment = find(&rendered, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        "ghcr.io/fleetcast/fleetcast-operator:0.1.0"
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert!(container["resources"]["requests"]["memory"].is_string());
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--default-image-tag=0.1.0"), "{args:?}");
    let env = container["env"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|e| e["name"] == "FLEETCAST_AUTOSCALE_INTERVAL_SECS" && e["value"] == "15"),
        "{env:?}"
    );
    // extraArgs may name any flag the chart sets through the environment:
    // no flag twice (clap refuses a repeated flag and the operator would not start).
    let tuned = docs(&template(
        &cluster,
        &ns.name,
        &["--set", "extraArgs={--autoscale-interval-secs=2}"],
    ));
    let tuned_args =
        find(&tuned, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().split('=').next().unwrap().to_owned())
            .collect::<Vec<_>>();
    let mut unique = tuned_args.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        tuned_args.len(),
        "a flag twice: {tuned_args:?}"
    );
    let test_pod = find(&rendered, "Pod");
    assert_eq!(test_pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    assert_eq!(test_pod["spec"]["containers"][0]["args"][0], "probe");

    // The optional ServiceMonitor needs the Prometheus Operator's CRD, so it is
    // only rendered here, not sent to the API server.
    let monitored = docs(&template(
        &cluster,
        &ns.name,
        &["--set", "metrics.serviceMonitor.enabled=true"],
    ));
    let monitor = find(&monitored, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
    let dashboard = docs(&template(
        &cluster,
        &ns.name,
        &["--set", "grafanaDashboard.enabled=true"],
    ));
    let json = find(&dashboard, "ConfigMap")["data"]["fleetcast-operator.json"]
        .as_str()
        .unwrap();
    let parsed: Value = serde_json::from_str(json).unwrap();
    assert_eq!(parsed["uid"], "fleetcast");
}

#[tokio::test]
async fn bad_values_fail_with_a_message() {
    let cluster = Cluster::shared().await.expect("test cluster");
    let ns = cluster.namespace("chart-bad").await.expect("namespace");
    let release = format!("fleetcast-{}", &ns.name[ns.name.len() - 5..]);
    let cases: [(&str, &str); 8] = [
        ("replicas=0", "/replicas"),
        ("replica=3", "'replica' not allowed"),
        ("logging.format=xml", "/logging/format"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("resources.limits.memory=lots", "/resources/limits/memory"),
        ("watchNamespace=Not_A_Namespace", "/watchNamespace"),
        ("extraArgs[0]=concurrency", "/extraArgs/0"),
        (
            "autoscaler.intervalSeconds=0",
            "/autoscaler/intervalSeconds",
        ),
    ];
    for (set, message) in cases {
        let out = run(
            helm(
                &cluster,
                &[
                    "install",
                    &release,
                    chart().to_str().unwrap(),
                    "--namespace",
                    &ns.name,
                    "--skip-crds",
                    "--set",
                    set,
                ],
            ),
            "",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "helm install --set {set} succeeded");
        assert!(
            stderr.contains("values don't meet the specifications of the schema")
                && stderr.contains(message),
            "helm install --set {set}: expected a schema message naming {message}, got:\n{stderr}"
        );
    }
    let list = ok(helm(&cluster, &["list", "-a", "-q", "-n", &ns.name]));
    assert!(list.trim().is_empty(), "releases left: {list}");
}

/// Every object of `release`: namespaced in `namespace`, and cluster-scoped.
fn leftovers(cluster: &Cluster, namespace: &str, release: &str) -> Vec<String> {
    let selector = format!("app.kubernetes.io/instance={release}");
    let mut found = Vec::new();
    for (kinds, scope) in [
        (
            "deployments,replicasets,pods,services,serviceaccounts,roles,rolebindings,poddisruptionbudgets,configmaps",
            Some(namespace),
        ),
        ("clusterroles,clusterrolebindings", None),
    ] {
        let mut kubectl = cluster.kubectl();
        kubectl.args(["get", kinds, "-l", &selector, "-o", "name"]);
        if let Some(ns) = scope {
            kubectl.args(["-n", ns]);
        }
        found.extend(ok(kubectl).lines().map(str::to_owned));
    }
    // Helm's own release records.
    let mut secrets = cluster.kubectl();
    secrets.args([
        "get",
        "secrets",
        "-n",
        namespace,
        "-l",
        &format!("owner=helm,name={release}"),
        "-o",
        "name",
    ]);
    found.extend(ok(secrets).lines().map(str::to_owned));
    found
}

fn get_json(cluster: &Cluster, args: &[&str]) -> Value {
    let mut kubectl = cluster.kubectl();
    kubectl.args(args).args(["-o", "json"]);
    serde_json::from_str(&ok(kubectl)).unwrap()
}

#[tokio::test]
async fn install_upgrade_uninstall_leaves_nothing_behind() {
    let cluster = Cluster::shared().await.expect("test cluster");
    let ns = cluster.namespace("chart-life").await.expect("namespace");
    // A release name of this test's own: cluster-scoped RBAC is named after it.
    let release = format!("fleetcast-{}", &ns.name[ns.name.len() - 5..]);
    let operator = format!("{release}-operator");
    let chart = chart();
    let chart = chart.to_str().unwrap();

    let out = ok(helm(
        &cluster,
        &["install", &release, chart, "--namespace", &ns.name],
    ));
    assert!(out.contains("examples/live.yaml"), "NOTES: {out}");
    let deployment = get_json(&cluster, &["get", "deployment", &operator, "-n", &ns.name]);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let crd = get_json(&cluster, &["get", "crd", "mediaclusters.fleetcast.io"]);
    assert_eq!(crd["spec"]["group"], "fleetcast.io");
    // The binding names the ServiceAccount the pods run as.
    let binding = get_json(&cluster, &["get", "clusterrolebinding", &operator]);
    assert_eq!(binding["subjects"][0]["name"], operator.as_str());
    assert_eq!(binding["subjects"][0]["namespace"], ns.name.as_str());
    for name in [
        format!("serviceaccount/{operator}"),
        format!("service/{operator}-metrics"),
        format!("role/{operator}-leader-election"),
        format!("rolebinding/{operator}-leader-election"),
        format!("poddisruptionbudget/{operator}"),
    ] {
        ok({
            let mut k = cluster.kubectl();
            k.args(["get", &name, "-n", &ns.name]);
            k
        });
    }

    ok(helm(
        &cluster,
        &[
            "upgrade",
            &release,
            chart,
            "--namespace",
            &ns.name,
            "--reuse-values",
            "--set",
            "replicas=3",
            "--set",
            "logging.level=debug",
        ],
    ));
    let deployment = get_json(&cluster, &["get", "deployment", &operator, "-n", &ns.name]);
    assert_eq!(deployment["spec"]["replicas"], 3);
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "RUST_LOG" && e["value"] == "debug"),
        "{env}"
    );
    // A bad upgrade is refused and changes nothing.
    let out = run(
        helm(
            &cluster,
            &[
                "upgrade",
                &release,
                chart,
                "--namespace",
                &ns.name,
                "--set",
                "replicas=-1",
            ],
        ),
        "",
    );
    assert!(!out.status.success());
    let history = ok(helm(
        &cluster,
        &["history", &release, "-n", &ns.name, "-o", "json"],
    ));
    let history: Value = serde_json::from_str(&history).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    let deployment = get_json(&cluster, &["get", "deployment", &operator, "-n", &ns.name]);
    assert_eq!(deployment["spec"]["replicas"], 3);

    ok(helm(
        &cluster,
        &["uninstall", &release, "--namespace", &ns.name, "--wait"],
    ));
    // Pods and ReplicaSets go by garbage collection after the Deployment.
    wait::until(
        "nothing of the release left",
        Duration::from_mins(1),
        || {
            let left = leftovers(&cluster, &ns.name, &release);
            async move { Ok(left.is_empty().then_some(())) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", leftovers(&cluster, &ns.name, &release)));
    // Helm never deletes CRDs (the MediaClusters would go with them).
    get_json(&cluster, &["get", "crd", "mediaclusters.fleetcast.io"]);
}
