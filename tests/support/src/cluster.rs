//! The Kubernetes the tests run on.
//!
//! By default the local control plane of `tests/cluster/` (etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler built from their Go
//! modules), started once and shared by every test binary of a run: each
//! binary calls `tests/cluster/up`, which is idempotent and locked, so the
//! first starts it and the rest find it running. `tests/run-all` stops it at
//! the end. With `KUBECONFIG` set, the tests use that cluster instead.

use std::collections::hash_map::RandomState;
use std::ffi::OsString;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::sync::OnceCell;

use crate::workspace_root;

/// Label every test namespace carries, so leftovers can be found and removed
/// with `kubectl delete ns -l fleetcast.io/test=true`.
pub const TEST_NAMESPACE_LABEL: &str = "fleetcast.io/test";

/// Lines of a failing script's output quoted in the error.
const TAIL_LINES: usize = 60;

/// The cluster of this test process; the error is kept too, so every test of
/// the binary fails at once with the same reason instead of retrying.
static SHARED: OnceCell<Result<Cluster, String>> = OnceCell::const_new();

/// The same with the node started too (`tests/cluster/up --node`).
static SHARED_NODE: OnceCell<Result<Cluster, String>> = OnceCell::const_new();

/// The local node's addresses, as `tests/cluster/up --node` prints them.
#[derive(Clone, Debug)]
pub struct Node {
    /// The node's (and the API server's advertised) address.
    pub ip: String,
    /// containerd's socket, for `ctr --address` (importing images).
    pub containerd_address: PathBuf,
    /// The address of the cluster DNS Service (`CoreDNS`).
    pub dns: String,
    /// The pause image the node's containerd runs pod sandboxes from
    /// (built and imported by `tests/cluster/up --node`).
    pub pause_image: String,
}

/// A Kubernetes cluster to test against, and the kubectl/helm to drive it.
#[derive(Clone)]
pub struct Cluster {
    /// The first kubeconfig file (the only one unless the user's
    /// `KUBECONFIG` lists several).
    kubeconfig: PathBuf,
    /// Value given to the tools as `KUBECONFIG` (may be a `:`-separated list).
    kubeconfig_env: OsString,
    bin_dir: PathBuf,
    /// True when the user pointed the tests at their own cluster.
    external: bool,
    /// The local node, when started ([`Cluster::with_node`]).
    node: Option<Node>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("kubeconfig", &self.kubeconfig_env)
            .field("bin_dir", &self.bin_dir)
            .field("external", &self.external)
            .field("node", &self.node)
            .finish()
    }
}

impl Cluster {
    /// If `KUBECONFIG` is set in the environment, uses that cluster (kind,
    /// k3d, a real one). Otherwise runs `tests/cluster/up` (idempotent,
    /// shared by all test binaries of the run) and uses the kubeconfig it
    /// prints. Errors with the reason (and log tails) if it cannot start.
    pub async fn shared() -> anyhow::Result<Cluster> {
        SHARED
            .get_or_init(|| async { start().await.map_err(|e| format!("{e:#}")) })
            .await
            .clone()
            .map_err(|e| anyhow!("the test cluster is not available: {e}"))
    }

    /// Like [`Cluster::shared`], with a node that runs pods: `tests/cluster/up
    /// --node` adds containerd, the kubelet, kube-proxy and `CoreDNS` to the
    /// shared control plane (root only). With `KUBECONFIG` set, that cluster
    /// is used as it is (its nodes, its DNS; images must be loaded into it).
    pub async fn with_node() -> anyhow::Result<Cluster> {
        SHARED_NODE
            .get_or_init(|| async { start_with_node().await.map_err(|e| format!("{e:#}")) })
            .await
            .clone()
            .map_err(|e| anyhow!("the test cluster with a node is not available: {e}"))
    }

    /// The local node, when this cluster has one started by the tests.
    pub fn node(&self) -> Option<&Node> {
        self.node.as_ref()
    }

    /// The kubeconfig file the tools and clients use.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// True when the tests run on the user's own cluster (`KUBECONFIG` set).
    pub fn is_external(&self) -> bool {
        self.external
    }

    /// A new client for this cluster.
    ///
    /// Made afresh on each call: a client belongs to the tokio runtime it was
    /// made on, and each `#[tokio::test]` has its own.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let mut merged: Option<Kubeconfig> = None;
        for path in std::env::split_paths(&self.kubeconfig_env) {
            if path.as_os_str().is_empty() {
                continue;
            }
            let one = Kubeconfig::read_from(&path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            merged = Some(match merged {
                Some(m) => m.merge(one).context("merging kubeconfigs")?,
                None => one,
            });
        }
        let kubeconfig = merged.ok_or_else(|| anyhow!("no kubeconfig file"))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .context("loading kubeconfig")?;
        Client::try_from(config).context("building the Kubernetes client")
    }

    /// kubectl built by `tests/cluster/build`, with `KUBECONFIG` set.
    pub fn kubectl(&self) -> Command {
        self.tool("kubectl")
    }

    /// helm built by `tests/cluster/build`, with `KUBECONFIG` set.
    pub fn helm(&self) -> Command {
        self.tool("helm")
    }

    /// Where kubectl, helm and the control-plane binaries are.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// A fresh namespace `<prefix>-<random>`; deleted when the guard drops.
    pub async fn namespace(&self, prefix: &str) -> anyhow::Result<TestNamespace> {
        let name = namespace_name(prefix)?;
        let client = self.client().await?;
        let api: Api<Namespace> = Api::all(client);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        api.create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(TestNamespace {
            name,
            kubectl: self.clone(),
        })
    }

    fn tool(&self, name: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(name));
        command.env("KUBECONFIG", &self.kubeconfig_env);
        command
    }
}

/// A namespace made for one test. Dropping it deletes the namespace
/// (`kubectl delete ns --wait=false`), so cleanup happens even when the test
/// panics.
pub struct TestNamespace {
    pub name: String,
    kubectl: Cluster,
}

impl TestNamespace {
    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Blocking on purpose: Drop cannot await, and this must also run
        // while a panicking test unwinds.
        let result = self
            .kubectl
            .kubectl()
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdout(Stdio::null())
            .output();
        match result {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "testkit: deleting namespace {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("testkit: deleting namespace {}: {e}", self.name),
        }
    }
}

/// `<prefix>-<8 hex digits>`, checked to be a valid DNS label.
fn namespace_name(prefix: &str) -> anyhow::Result<String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let name = format!("{prefix}-{:08x}", hasher.finish() & 0xffff_ffff);
    let valid = name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.as_bytes()[0].is_ascii_lowercase();
    if !valid {
        bail!("namespace prefix {prefix:?} does not make a valid DNS label ({name})");
    }
    Ok(name)
}

async fn start() -> anyhow::Result<Cluster> {
    start_up(false).await
}

async fn start_with_node() -> anyhow::Result<Cluster> {
    start_up(true).await
}

async fn start_up(with_node: bool) -> anyhow::Result<Cluster> {
    let root = workspace_root();
    let user_kubeconfig = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty());
    let preset_bin = std::env::var_os("FLEETCAST_KUBE_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);

    if let Some(kubeconfig_env) = user_kubeconfig {
        let bin_dir = if let Some(dir) = preset_bin {
            dir
        } else {
            let out = run_script(&root.join("tests/cluster/build")).await?;
            PathBuf::from(
                last_line(&out).ok_or_else(|| anyhow!("tests/cluster/build printed no bin dir"))?,
            )
        };
        let kubeconfig = std::env::split_paths(&kubeconfig_env)
            .find(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| anyhow!("KUBECONFIG is set but names no file"))?;
        return Ok(Cluster {
            kubeconfig,
            kubeconfig_env,
            bin_dir,
            external: true,
            node: None,
        });
    }

    let up = root.join("tests/cluster/up");
    let out = if with_node {
        run_script_args(&up, &["--node"], None).await?
    } else {
        run_script(&up).await?
    };
    let node = if with_node {
        let value = |name: &str| {
            export_value(&out, name)
                .ok_or_else(|| anyhow!("tests/cluster/up --node printed no `export {name}=` line"))
        };
        Some(Node {
            ip: value("FLEETCAST_NODE_IP")?,
            containerd_address: PathBuf::from(value("FLEETCAST_CONTAINERD_ADDRESS")?),
            dns: value("FLEETCAST_CLUSTER_DNS")?,
            pause_image: value("FLEETCAST_PAUSE_IMAGE")?,
        })
    } else {
        None
    };
    let kubeconfig = export_value(&out, "KUBECONFIG")
        .ok_or_else(|| anyhow!("tests/cluster/up printed no `export KUBECONFIG=` line:\n{out}"))?;
    let bin_dir = preset_bin
        .or_else(|| export_value(&out, "FLEETCAST_KUBE_BIN").map(PathBuf::from))
        .ok_or_else(|| anyhow!("tests/cluster/up printed no `export FLEETCAST_KUBE_BIN=` line"))?;
    Ok(Cluster {
        kubeconfig_env: OsString::from(&kubeconfig),
        kubeconfig: PathBuf::from(kubeconfig),
        bin_dir,
        external: false,
        node,
    })
}

/// A control plane of one test's own (its own state dir, ports and etcd),
/// for a test that needs a cluster in a state the shared one must not be put
/// in, such as one without the `MediaCluster` CRD. Always the local control
/// plane of `tests/cluster/`, even when `KUBECONFIG` names another cluster.
/// Stopped, and its state removed, when dropped.
pub struct PrivateCluster {
    cluster: Cluster,
    state: PathBuf,
}

impl PrivateCluster {
    /// Starts it (about as long as a first `tests/cluster/up`).
    pub async fn start(name: &str) -> anyhow::Result<PrivateCluster> {
        let state =
            std::env::temp_dir().join(format!("fleetcast-cluster-{name}-{}", std::process::id()));
        let out = run_script_in(&workspace_root().join("tests/cluster/up"), Some(&state)).await?;
        let kubeconfig = export_value(&out, "KUBECONFIG").ok_or_else(|| {
            anyhow!("tests/cluster/up printed no `export KUBECONFIG=` line:\n{out}")
        })?;
        let bin_dir = export_value(&out, "FLEETCAST_KUBE_BIN")
            .map(PathBuf::from)
            .ok_or_else(|| {
                anyhow!("tests/cluster/up printed no `export FLEETCAST_KUBE_BIN=` line")
            })?;
        Ok(PrivateCluster {
            cluster: Cluster {
                kubeconfig_env: OsString::from(&kubeconfig),
                kubeconfig: PathBuf::from(kubeconfig),
                bin_dir,
                external: false,
                node: None,
            },
            state,
        })
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let result = Command::new(workspace_root().join("tests/cluster/down"))
            .env("FLEETCAST_CLUSTER_DIR", &self.state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output();
        match result {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "testkit: stopping the private cluster in {} failed: {}",
                self.state.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("testkit: stopping the private cluster: {e}"),
        }
        // `up` locks beside the state dir; `down` leaves that file.
        let mut lock = self.state.clone().into_os_string();
        lock.push("-up.lock");
        let _ = std::fs::remove_file(lock);
    }
}

/// Runs one of the `tests/cluster/` scripts; returns its stdout, or an error
/// quoting the tail of what it printed.
async fn run_script(script: &Path) -> anyhow::Result<String> {
    run_script_in(script, None).await
}

/// [`run_script`] with `FLEETCAST_CLUSTER_DIR` set to `state` when given.
async fn run_script_in(script: &Path, state: Option<&Path>) -> anyhow::Result<String> {
    run_script_args(script, &[], state).await
}

/// [`run_script_in`] with arguments.
async fn run_script_args(
    script: &Path,
    args: &[&str],
    state: Option<&Path>,
) -> anyhow::Result<String> {
    let mut command = tokio::process::Command::new(script);
    command.args(args);
    if let Some(state) = state {
        command.env("FLEETCAST_CLUSTER_DIR", state);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!(
            "{} failed ({}):\n{}\n{}",
            script.display(),
            output.status,
            tail(&stdout, TAIL_LINES),
            tail(&stderr, TAIL_LINES)
        );
    }
    Ok(stdout)
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// The value of the last `export NAME=value` line (quotes removed).
fn export_value(text: &str, name: &str) -> Option<String> {
    let prefix = format!("export {name}=");
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_owned())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_dns_labels_and_differ() {
        let a = namespace_name("crd").unwrap();
        let b = namespace_name("crd").unwrap();
        assert!(a.starts_with("crd-") && a.len() == 12, "{a}");
        assert_ne!(a, b);
        assert!(namespace_name("Bad_Prefix").is_err());
        assert!(namespace_name(&"x".repeat(60)).is_err());
    }

    #[test]
    fn export_lines_are_parsed() {
        let out =
            "starting\nexport FLEETCAST_KUBE_BIN=/c/bin\nexport KUBECONFIG='/s/admin.kubeconfig'\n";
        assert_eq!(
            export_value(out, "KUBECONFIG").as_deref(),
            Some("/s/admin.kubeconfig")
        );
        assert_eq!(
            export_value(out, "FLEETCAST_KUBE_BIN").as_deref(),
            Some("/c/bin")
        );
        assert_eq!(export_value(out, "PATH"), None);
        assert_eq!(last_line("a\nb\n\n"), Some("b"));
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("tests/cluster").is_dir());
    }
}
