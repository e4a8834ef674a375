//! Small Kubernetes helpers the end-to-end tests share: waiting for pods,
//! reading a Service's address, resolving a name through the cluster DNS.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use fleetcast_testkit::cluster::Cluster;
use fleetcast_testkit::wait;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::process::Command;

/// True when the pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod's phase ("" when not reported yet).
pub fn pod_phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// A one-line summary of each pod (name, phase, the node it is on, the
/// conditions that are not True with their reasons, waiting containers),
/// for error messages. A Pending pod with no node says here why the
/// scheduler left it (`PodScheduled=False Unschedulable: ...`).
pub fn describe_pods(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| {
            let name = p.metadata.name.as_deref().unwrap_or("?");
            let waiting: Vec<String> = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
                        .map(|w| {
                            format!(
                                "{}: {}",
                                w.reason.as_deref().unwrap_or("waiting"),
                                w.message.as_deref().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .map_or_else(|| "not on a node".to_owned(), |n| format!("on {n}"));
            let unmet: Vec<String> = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .map(|cs| {
                    cs.iter()
                        .filter(|c| c.status != "True")
                        .map(|c| {
                            format!(
                                "{}={} {}: {}",
                                c.type_,
                                c.status,
                                c.reason.as_deref().unwrap_or(""),
                                c.message.as_deref().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{name} {} {node} [{}] {}",
                pod_phase(p),
                unmet.join("; "),
                waiting.join("; ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until `count` pods matching `selector` are Ready; returns them.
pub async fn wait_ready_pods(
    client: &Client,
    namespace: &str,
    selector: &str,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let what = format!("{count} Ready pods matching {selector} in {namespace}");
    let result = wait::until(&what, timeout, || async {
        let list = pods.list(&ListParams::default().labels(selector)).await?;
        let ready: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| pod_ready(p) && p.metadata.deletion_timestamp.is_none())
            .collect();
        Ok((ready.len() >= count).then_some(ready))
    })
    .await;
    match result {
        Ok(ready) => Ok(ready),
        Err(e) => {
            let list = pods.list(&ListParams::default().labels(selector)).await?;
            Err(e.context(format!("pods now:\n{}", describe_pods(&list.items))))
        }
    }
}

/// The Service's cluster IP and the port named `port_name`.
pub async fn service_address(
    client: &Client,
    namespace: &str,
    name: &str,
    port_name: &str,
) -> anyhow::Result<(String, u16)> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let service = services
        .get(name)
        .await
        .with_context(|| format!("getting Service {namespace}/{name}"))?;
    let spec = service
        .spec
        .ok_or_else(|| anyhow!("Service {name} has no spec"))?;
    let ip = spec
        .cluster_ip
        .filter(|ip| !ip.is_empty() && ip != "None")
        .ok_or_else(|| anyhow!("Service {name} has no cluster IP"))?;
    let port = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.name.as_deref() == Some(port_name))
        .ok_or_else(|| anyhow!("Service {name} has no port named {port_name}"))?
        .port;
    let port = u16::try_from(port).with_context(|| format!("port {port} of Service {name}"))?;
    Ok((ip, port))
}

/// The A records of `name` from the DNS server at `server` (`dig +short`).
pub async fn resolve(server: &str, name: &str) -> anyhow::Result<Vec<String>> {
    let out = Command::new("dig")
        .args([
            "+short",
            "+time=2",
            "+tries=2",
            &format!("@{server}"),
            name,
            "A",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .context("running dig (tests/setup installs dnsutils)")?;
    if !out.status.success() {
        bail!(
            "dig @{server} {name} failed: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The last lines of every container's log of the pods matching `selector`
/// (`kubectl logs --prefix`), for a failed test to show what the pods said.
pub async fn pod_logs(mut kubectl: std::process::Command, ns: &str, selector: &str) -> String {
    kubectl
        .args([
            "-n",
            ns,
            "logs",
            "-l",
            selector,
            "--all-containers",
            "--prefix",
        ])
        .args(["--tail", "80", "--max-log-requests", "20", "--timestamps"])
        .stdin(Stdio::null());
    match Command::from(kubectl).output().await {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("kubectl logs failed: {e}"),
    }
}

/// Why pods may not start, from the cluster's own words: `kubectl describe`
/// of the pods matching `selector` in `ns` (every pod there when empty) with
/// their conditions and events such as `FailedScheduling`; of the nodes
/// (conditions, taints, allocated requests, the pods on them); every pod of
/// the cluster; what the kubelet and the scheduler logged about eviction,
/// pressure and scheduling; and the free space where the node keeps its
/// containers (the kubelet taints the node when it runs out).
pub async fn scheduling_report(cluster: &Cluster, ns: &str, selector: &str) -> String {
    let mut report = String::new();
    let mut pods = cluster.kubectl();
    pods.args(["-n", ns, "describe", "pods"]);
    if !selector.is_empty() {
        pods.args(["-l", selector]);
    }
    report += &section("kubectl describe pods", pods).await;
    let mut nodes = cluster.kubectl();
    nodes.args(["describe", "nodes"]);
    report += &section("kubectl describe nodes", nodes).await;
    let mut all = cluster.kubectl();
    all.args(["get", "pods", "--all-namespaces", "-o", "wide"]);
    report += &section("kubectl get pods --all-namespaces", all).await;
    // The components' logs are beside the kubeconfig in the cluster's state
    // dir (tests/cluster/up); on a user's cluster there are none.
    if let Some(logs) = cluster.kubeconfig().parent().map(|d| d.join("logs")) {
        // Each component's lines on why pods do not run, without the
        // start-up flags and the events a terminating namespace refused.
        for (component, words, noise) in [
            ("kubelet", ["eviction", "pressure", "taint"], "flags.go"),
            (
                "kube-scheduler",
                ["error", "fail", "unschedulable"],
                "rejected event",
            ),
        ] {
            if let Ok(text) = std::fs::read_to_string(logs.join(format!("{component}.log"))) {
                let lines: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        let l = l.to_ascii_lowercase();
                        !l.contains(noise) && words.iter().any(|w| l.contains(w))
                    })
                    .collect();
                let tail = &lines[lines.len().saturating_sub(15)..];
                report.push_str(&section_text(
                    &format!("{component}.log, last lines about {}", words.join("/")),
                    &tail.join("\n"),
                ));
            }
        }
    }
    if let Some(dir) = cluster
        .node()
        .and_then(|n| n.containerd_address.parent().map(Path::to_path_buf))
    {
        let mut df = std::process::Command::new("df");
        df.arg("-h").arg(dir);
        report += &section("df -h of the node's state", df).await;
    }
    report
}

/// One command's output under a heading, or why it could not run.
async fn section(title: &str, mut command: std::process::Command) -> String {
    command.stdin(Stdio::null());
    let body = match Command::from(command).output().await {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("could not run: {e}"),
    };
    section_text(title, &body)
}

fn section_text(title: &str, body: &str) -> String {
    format!("--- {title}\n{}\n", body.trim_end())
}
