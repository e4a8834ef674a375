//! Small Kubernetes helpers the end-to-end tests share: waiting for pods,
//! reading a Service's address, resolving a name through the cluster DNS.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
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

/// A one-line summary of each pod (name, phase, waiting reasons), for
/// error messages.
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
            format!("{name} {} {}", pod_phase(p), waiting.join("; "))
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
