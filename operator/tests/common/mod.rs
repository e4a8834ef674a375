//! Helpers of the operator's integration tests: the CRD, the operator (as
//! the real binary or in-process through the library), and polling.

#![allow(dead_code)] // Each test binary uses a different part.
#![allow(clippy::unwrap_used, clippy::doc_markdown)] // Test helpers: a panic is the failure report.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use fleetcast_operator::crd::{CRD_NAME, MediaCluster};
use fleetcast_operator::metrics::Metrics;
use fleetcast_operator::reconcile::{self, Settings};
use fleetcast_testkit::cluster::Cluster;
use fleetcast_testkit::wait;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, PostParams};

/// Generous bound for anything the control plane does (not a performance assertion).
pub const WAIT: Duration = Duration::from_mins(1);

/// Installs the checked-in CRD (idempotent, safe from several test binaries at once)
/// and waits until it is served.
pub async fn install_crd(cluster: &Cluster) -> anyhow::Result<()> {
    let crd = fleetcast_testkit::workspace_root().join("crds");
    let mut last = String::new();
    for _ in 0..5 {
        let out = cluster
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(&crd)
            .output()
            .context("running kubectl apply")?;
        if out.status.success() {
            last.clear();
            break;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if !last.is_empty() {
        bail!("kubectl apply -f crds/ failed: {last}");
    }
    let client = cluster.client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    wait::until("the MediaCluster CRD to be established", WAIT, || {
        let crds = crds.clone();
        async move {
            let crd = crds.get(CRD_NAME).await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            Ok(established.then_some(()))
        }
    })
    .await
}

/// A MediaCluster from YAML.
pub fn mc_from_yaml(yaml: &str) -> MediaCluster {
    serde_yaml_ng::from_str(yaml).expect("test MediaCluster YAML parses")
}

/// Creates a MediaCluster in `namespace`.
pub async fn create(
    client: &Client,
    namespace: &str,
    mc: &MediaCluster,
) -> anyhow::Result<MediaCluster> {
    let api: Api<MediaCluster> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), mc)
        .await
        .context("creating the MediaCluster")
}

/// The controller running in this process, stopped when dropped.
pub struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    pub metrics: Arc<Metrics>,
}

impl InProcess {
    /// Starts the library's controller for one namespace.
    pub fn start(client: Client, namespace: &str) -> Self {
        Self::start_with(
            client,
            namespace,
            fleetcast_operator::autoscale::run::Settings::default(),
        )
    }

    /// Same, with the autoscaler's settings.
    pub fn start_with(
        client: Client,
        namespace: &str,
        autoscale: fleetcast_operator::autoscale::run::Settings,
    ) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = Arc::new(Metrics::default());
        let settings = Settings {
            namespace: Some(namespace.to_owned()),
            default_tag: "test".to_owned(),
            instance: format!("test-{namespace}"),
            concurrency: 4,
            autoscale,
            operator_namespace: Some(namespace.to_owned()),
        };
        let task = tokio::spawn(reconcile::run(
            client,
            settings,
            metrics.clone(),
            || {},
            async move {
                let _ = stopped.await;
            },
        ));
        InProcess {
            stop: Some(stop),
            task,
            metrics,
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// The operator binary running as a child process, killed when dropped.
pub struct OperatorProcess {
    child: Child,
    pub identity: String,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl OperatorProcess {
    /// Starts `fleetcast-operator run` for one namespace with a short lease.
    pub async fn start(kubeconfig: &Path, namespace: &str, identity: &str) -> anyhow::Result<Self> {
        Self::start_with(kubeconfig, namespace, identity, &[]).await
    }

    /// Same, with extra arguments.
    pub async fn start_with(
        kubeconfig: &Path,
        namespace: &str,
        identity: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fleetcast-operator"))
            .args([
                "run",
                "--namespace",
                namespace,
                "--lease-namespace",
                namespace,
            ])
            .args(["--http-addr", "127.0.0.1:0", "--lease-duration-secs", "3"])
            .args(["--identity", identity, "--log-format", "json"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting fleetcast-operator")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        let log_for_wait = log.clone();
        let addr = wait::until("the operator to log its HTTP address", WAIT, || {
            let log = log_for_wait.clone();
            async move {
                let lines = log.lock().unwrap().clone();
                for line in &lines {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line)
                        && let Some(addr) = v.get("addr").and_then(|a| a.as_str())
                    {
                        return Ok(Some(addr.parse::<SocketAddr>()?));
                    }
                }
                Ok(None)
            }
        })
        .await;
        let mut process = OperatorProcess {
            child,
            identity: identity.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        match addr {
            Ok(addr) => process.addr = addr,
            Err(e) => bail!("{e:#}\noperator output:\n{}", process.output()),
        }
        Ok(process)
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// GET one of its HTTP endpoints.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(self.addr, path).await
    }

    /// The value of an unlabelled metric.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let (_, body) = self.get("/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .ok_or_else(|| anyhow!("metric {name} not in /metrics:\n{body}"))?
            .trim()
            .parse()
            .context("parsing the metric")
    }

    /// SIGKILL: no chance to release the Lease.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "the operator did not exit within 30s of SIGTERM:\n{}",
            self.output()
        )
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal HTTP/1.1 GET over loopback (the operator's own endpoints).
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP response: {text}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// A file under the test target dir, for kubeconfigs the tests write.
pub fn scratch_file(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    dir.join(name)
}
