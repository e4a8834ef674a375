// Kubernetes kinds are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use fleetcast_operator::crd::{CRD_NAME, CRD_PATH, MediaCluster};
use fleetcast_operator::http::{self, Health};
use fleetcast_operator::leader::{self, Elector, Timing};
use fleetcast_operator::metrics::Metrics;
use fleetcast_operator::reconcile::{self, Settings};
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Fleetcast operator: turns MediaCluster resources into origin and edge
/// media-server workloads and wires every edge to its origins.
#[derive(Parser)]
#[command(name = "fleetcast-operator", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the cluster in KUBECONFIG or the in-cluster config.
    Run(RunArgs),
    /// Print the MediaCluster CustomResourceDefinition as YAML.
    Crd,
    /// GET an http:// URL and exit 0 on a 2xx answer (checks from the image, which has no shell).
    Probe(ProbeArgs),
}

#[derive(Args, Debug)]
struct ProbeArgs {
    /// The URL, e.g. http://fleetcast-operator-metrics.fleetcast-system.svc:8080/healthz.
    url: String,
    /// Attempts, one second apart, before giving up.
    #[arg(long, default_value_t = 1)]
    retries: u32,
    /// Seconds one attempt may take.
    #[arg(long, default_value_t = 5)]
    timeout_secs: u64,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Watch MediaClusters in this namespace only (default: all namespaces).
    #[arg(long, env = "FLEETCAST_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "FLEETCAST_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "fleetcast-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace, else the watched one, else "default").
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Seconds a leader's Lease holds without renewal; a standby takes over after that.
    #[arg(long, default_value_t = 15)]
    lease_duration_secs: u64,
    /// This replica's identity in the Lease (default: POD_NAME, else host and pid).
    #[arg(long)]
    identity: Option<String>,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// MediaClusters reconciled at once.
    #[arg(long, default_value_t = 16)]
    concurrency: u16,
    /// Media-server image tag for MediaClusters that name none.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    default_image_tag: String,
    /// Seconds between evaluations of viewer- and bandwidth-autoscaled edge pools.
    #[arg(long, env = "FLEETCAST_AUTOSCALE_INTERVAL_SECS", default_value_t = 15)]
    autoscale_interval_secs: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", fleetcast_operator::crd::crd_yaml()?);
            Ok(())
        }
        Command::Probe(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")?
            .block_on(probe(&args)),
        Command::Run(args) => {
            init_logs(args.log_format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            runtime.block_on(run(args))
        }
    }
}

/// Runs `probe`: the answer's status on stdout, the last error as the failure.
async fn probe(args: &ProbeArgs) -> anyhow::Result<()> {
    let target = fleetcast_operator::probe::Target::parse(&args.url)?;
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let mut attempt = 1;
    loop {
        let outcome = match fleetcast_operator::probe::get(&target, timeout).await {
            Ok(code) if (200..300).contains(&code) => {
                println!("{}: {code}", args.url);
                return Ok(());
            }
            Ok(code) => anyhow::anyhow!("{}: answered {code}", args.url),
            Err(e) => e.into(),
        };
        if attempt >= args.retries {
            return Err(outcome.context(format!("probing {}, attempts: {attempt}", args.url)));
        }
        eprintln!("attempt {attempt}: {outcome:#}");
        attempt += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

/// Fails with instructions when the CRD is not installed, instead of retrying forever.
async fn check_crd(client: &Client, namespace: Option<&str>) -> anyhow::Result<()> {
    let api: Api<MediaCluster> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => bail!(
            "the MediaCluster CRD ({CRD_NAME}) is not installed in this cluster.\n\
             Install it with `kubectl apply -f crds/` (the file is {CRD_PATH}; \
             `fleetcast-operator crd | kubectl apply -f -` does the same) or with the Helm chart \
             (`helm install fleetcast charts/fleetcast`), then start the operator again."
        ),
        Err(e) => Err(e).context("listing MediaClusters to check that the CRD is installed"),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("connecting to Kubernetes (KUBECONFIG or in-cluster config)")?;
    check_crd(&client, args.namespace.as_deref()).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let health = Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let (addr, server) = http::serve(args.http_addr, health, stopped(stop_rx.clone()))
        .await
        .with_context(|| format!("listening on {}", args.http_addr))?;
    info!(addr = %addr, "serving /healthz, /readyz and /metrics");

    let identity = args
        .identity
        .clone()
        .unwrap_or_else(leader::default_identity);
    let lease_namespace = args
        .lease_namespace
        .clone()
        .or_else(|| args.namespace.clone())
        .unwrap_or_else(|| "default".to_owned());
    let timing = Timing::for_duration(Duration::from_secs(args.lease_duration_secs.max(1)));
    let mut elector = Elector::new(
        client.clone(),
        &lease_namespace,
        &args.lease_name,
        &identity,
        timing,
    );
    info!(identity = %identity, lease = %format!("{lease_namespace}/{}", args.lease_name), "waiting to lead");

    // Stand by until we hold the Lease (or are told to stop).
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(true) => break,
            Ok(false) => ready.store(true, Ordering::Relaxed),
            Err(e) => warn!(error = %e, "leader election"),
        }
        if wait_or_stop(timing.retry_period, &stop_rx).await {
            info!("stopping while standing by");
            let _ = server.await;
            return Ok(());
        }
    }
    let result = lead(
        &client,
        &args,
        &identity,
        &mut elector,
        &metrics,
        &ready,
        &stop_rx,
    )
    .await;
    if result.is_ok() {
        info!("released the Lease; bye");
    }
    let _ = server.await;
    result
}

/// Runs the controller while holding the Lease; returns when told to stop
/// (after releasing the Lease) or fails when leadership is lost.
async fn lead(
    client: &Client,
    args: &RunArgs,
    identity: &str,
    elector: &mut Elector,
    metrics: &Arc<Metrics>,
    ready: &Arc<AtomicBool>,
    stop_rx: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let timing = elector.timing();
    info!(identity = %identity, "leading: starting the controller");
    metrics.leader.set(1);
    ready.store(false, Ordering::Relaxed);

    let (controller_stop_tx, controller_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let settings = Settings {
        namespace: args.namespace.clone(),
        default_tag: args.default_image_tag.clone(),
        instance: identity.to_owned(),
        concurrency: args.concurrency,
        autoscale: fleetcast_operator::autoscale::run::Settings {
            interval: Duration::from_secs(args.autoscale_interval_secs.max(1)),
            ..fleetcast_operator::autoscale::run::Settings::default()
        },
        // The pod's namespace (POD_NAMESPACE), where the Lease lives too.
        operator_namespace: args.lease_namespace.clone(),
    };
    let ready_flag = ready.clone();
    let mut controller = tokio::spawn(reconcile::run(
        client.clone(),
        settings,
        metrics.clone(),
        move || ready_flag.store(true, Ordering::Relaxed),
        async move {
            let _ = controller_stop_rx.await;
        },
    ));

    // Renew; give up leadership (and exit) when renewal keeps failing, so a
    // standby can take over without two writers.
    let renew_deadline = timing.lease_duration * 2 / 3;
    let mut last_renewed = Instant::now();
    let lost = loop {
        if wait_or_stop(timing.retry_period, stop_rx).await {
            break false;
        }
        if controller.is_finished() {
            error!("the controller stopped on its own");
            break true;
        }
        match elector.try_acquire_or_renew().await {
            Ok(true) => last_renewed = Instant::now(),
            Ok(false) => {
                error!("another replica holds the Lease now");
                break true;
            }
            Err(e) => warn!(error = %e, "renewing the Lease"),
        }
        if last_renewed.elapsed() > renew_deadline {
            error!(deadline = ?renew_deadline, "could not renew the Lease in time");
            break true;
        }
    };

    metrics.leader.set(0);
    let _ = controller_stop_tx.send(());
    if lost {
        controller.abort();
        bail!("lost leadership; exiting so that only one replica writes");
    }
    if tokio::time::timeout(Duration::from_secs(20), &mut controller)
        .await
        .is_err()
    {
        warn!("controller did not stop within 20s; aborting it");
        controller.abort();
    }
    if let Err(e) = elector.release().await {
        warn!(error = %e, "releasing the Lease");
    }
    Ok(())
}
/// Sleeps for `period`; true if a stop was requested meanwhile.
async fn wait_or_stop(period: Duration, stop: &watch::Receiver<bool>) -> bool {
    let mut stop = stop.clone();
    if *stop.borrow() {
        return true;
    }
    let stopped = tokio::select! {
        () = tokio::time::sleep(period) => false,
        r = stop.wait_for(|s| *s) => r.is_ok(),
    };
    stopped || *stop.borrow()
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
