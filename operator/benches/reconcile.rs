//! Reconcile latency and operator memory on the test control plane.
//!
//! Starts the release operator binary for one fresh namespace, creates
//! MediaClusters one at a time (`--singles` of them), then `--burst` of them
//! at once, then again one at a time while all those exist (`--loaded` of
//! them), and measures, per MediaCluster, the time from the create request
//! to the moment every one of its children has been seen by a watch. Reports
//! p50 and p99 of each, and the operator's RSS (VmRSS, VmHWM) once the burst
//! settled.
//!
//! ```text
//! cargo bench -p fleetcast-operator --bench reconcile -- --singles 20 --burst 100 --loaded 20
//! ```
//!
//! Uses the cluster of `KUBECONFIG`, else starts `tests/cluster/up`.

// A measuring tool: a panic is a failed measurement.
#![allow(
    clippy::unwrap_used,
    clippy::doc_markdown,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::too_many_lines
)]

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use fleetcast_operator::crd::MediaCluster;
use fleetcast_testkit::cluster::Cluster;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

#[derive(Parser)]
struct Args {
    /// MediaClusters created one after another (latency of a lone apply).
    #[arg(long, default_value_t = 20)]
    singles: usize,
    /// MediaClusters created at once.
    #[arg(long, default_value_t = 100)]
    burst: usize,
    /// MediaClusters created one after another once the burst exists (latency at scale).
    #[arg(long, default_value_t = 20)]
    loaded: usize,
    /// MediaClusters the operator reconciles at once (its --concurrency).
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
    /// Passed by `cargo bench` to every bench binary. Without it (`cargo
    /// test --all-targets` runs benches once as a check) the sets are cut to
    /// a few MediaClusters, so the test run stays short and still fails if
    /// the measurement cannot complete.
    #[arg(long, hide = true)]
    bench: bool,
    /// The operator binary (default: the one cargo built with this bench).
    #[arg(long)]
    operator: Option<std::path::PathBuf>,
}

/// Children of one two-pool MediaCluster in service mode.
const CHILDREN: usize = 13;

type Seen = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

fn spec(name: &str) -> MediaCluster {
    serde_yaml_ng::from_str(&format!(
        "apiVersion: fleetcast.io/v1alpha1\nkind: MediaCluster\nmetadata: {{ name: {name} }}\nspec:\n  edges: [ {{ name: london }}, {{ name: tokyo }} ]\n"
    ))
    .unwrap()
}

/// Records when each child was first seen, keyed by its MediaCluster.
fn watch_kind<K>(client: &Client, ns: &str, seen: &Seen)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<PartialObjectMeta<K>> = Api::namespaced(client.clone(), ns);
    let seen = seen.clone();
    let mut firsts: std::collections::HashSet<String> = std::collections::HashSet::new();
    tokio::spawn(async move {
        let mut stream = watcher(
            api,
            watcher::Config::default().labels("app.kubernetes.io/managed-by=fleetcast-operator"),
        )
        .default_backoff()
        .applied_objects()
        .boxed();
        // A watch error (the API server ending a watch under load) must not
        // end the recording: the watcher re-lists and goes on.
        while let Some(item) = stream.next().await {
            let Ok(obj) = item else { continue };
            let now = Instant::now();
            let key = format!("{}/{}", K::kind(&()), obj.name_any());
            if !firsts.insert(key) {
                continue;
            }
            if let Some(mc) = obj.labels().get("app.kubernetes.io/instance") {
                seen.lock()
                    .unwrap()
                    .entry(mc.clone())
                    .or_default()
                    .push(now);
            }
        }
    });
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn wait_all(seen: &Seen, started: &BTreeMap<String, Instant>) -> Vec<Duration> {
    let deadline = Instant::now() + Duration::from_mins(5);
    loop {
        let done: Vec<Duration> = {
            let seen = seen.lock().unwrap();
            started
                .iter()
                .filter_map(|(name, t0)| {
                    let times = seen.get(name)?;
                    (times.len() >= CHILDREN)
                        .then(|| times.iter().max().unwrap().duration_since(*t0))
                })
                .collect()
        };
        if done.len() == started.len() {
            let mut done = done;
            done.sort();
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {} MediaClusters complete",
            done.len(),
            started.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if !args.bench {
        args.singles = args.singles.min(2);
        args.burst = args.burst.min(3);
        args.loaded = args.loaded.min(1);
    }
    let cluster = Cluster::shared().await?;
    let crd = fleetcast_testkit::workspace_root().join("crds");
    let out = cluster
        .kubectl()
        .args(["apply", "--server-side", "--force-conflicts", "-f"])
        .arg(&crd)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "installing the CRD: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ns = cluster.namespace("op-bench").await?;
    let client = cluster.client().await?;

    let operator = args
        .operator
        .clone()
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_fleetcast-operator").into());
    let mut child = Command::new(&operator)
        .args([
            "run",
            "--namespace",
            &ns.name,
            "--lease-namespace",
            &ns.name,
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(["--concurrency", &args.concurrency.to_string()])
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_rss, _) = rss_kib(pid);

    let seen: Seen = Arc::default();
    watch_kind::<Deployment>(&client, &ns.name, &seen);
    watch_kind::<Service>(&client, &ns.name, &seen);
    watch_kind::<ConfigMap>(&client, &ns.name, &seen);
    watch_kind::<PodDisruptionBudget>(&client, &ns.name, &seen);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let api: Api<MediaCluster> = Api::namespaced(client.clone(), &ns.name);

    let one_at_a_time = |prefix: &'static str, count: usize| {
        let api = api.clone();
        let seen = seen.clone();
        async move {
            let mut times = Vec::new();
            for i in 0..count {
                let name = format!("{prefix}-{i}");
                let t0 = Instant::now();
                api.create(&PostParams::default(), &spec(&name)).await?;
                times.extend(wait_all(&seen, &BTreeMap::from([(name, t0)])).await);
            }
            times.sort();
            anyhow::Ok(times)
        }
    };
    let singles = one_at_a_time("single", args.singles).await?;

    let mut started = BTreeMap::new();
    let creates = (0..args.burst).map(|i| {
        let api = api.clone();
        async move {
            let name = format!("burst-{i}");
            let t0 = Instant::now();
            api.create(&PostParams::default(), &spec(&name))
                .await
                .map(|_| (name, t0))
        }
    });
    for result in futures::future::join_all(creates).await {
        let (name, t0) = result?;
        started.insert(name, t0);
    }
    let burst = wait_all(&seen, &started).await;
    // Let the burst's follow-up reconciles (status writes) settle, then measure
    // a lone apply on an operator that already holds all of them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let loaded = one_at_a_time("loaded", args.loaded).await?;
    // Let status writes and follow-up reconciles finish before reading memory.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss, hwm) = rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();

    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    let total = args.singles + args.burst + args.loaded;
    println!("| measurement | p50 | p99 | max |");
    println!("|---|---|---|---|");
    println!(
        "| 1 MediaCluster at a time ({} runs): apply -> all {CHILDREN} children | {} | {} | {} |",
        singles.len(),
        ms(percentile(&singles, 50.0)),
        ms(percentile(&singles, 99.0)),
        ms(*singles.last().unwrap())
    );
    println!(
        "| {} MediaClusters at once: apply -> all {CHILDREN} children | {} | {} | {} |",
        burst.len(),
        ms(percentile(&burst, 50.0)),
        ms(percentile(&burst, 99.0)),
        ms(*burst.last().unwrap())
    );
    if !loaded.is_empty() {
        println!(
            "| 1 MediaCluster at a time with {} present ({} runs): apply -> all {CHILDREN} children | {} | {} | {} |",
            args.singles + args.burst,
            loaded.len(),
            ms(percentile(&loaded, 50.0)),
            ms(percentile(&loaded, 99.0)),
            ms(*loaded.last().unwrap())
        );
    }
    println!();
    println!(
        "operator RSS: {:.1} MiB idle; {:.1} MiB with {total} MediaClusters ({} children) reconciled; peak {:.1} MiB",
        idle_rss as f64 / 1024.0,
        rss as f64 / 1024.0,
        total * CHILDREN,
        hwm as f64 / 1024.0
    );
    Ok(())
}
