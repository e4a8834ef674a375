//! The autoscaler loop (runs only on the leader, beside the controller):
//! every interval it reads `/api/stats` of every edge pod, decides the
//! replicas of each viewer- or bandwidth-scaled pool with [`decision`], sets
//! the pods' deletion cost before a scale-down, writes the Deployment's
//! `replicas` under its own field manager, and reports status and an Event
//! for every scale.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::behavior;
use super::decision::{self, History, Input};
use super::pods::{self, DELETION_COST_ANNOTATION, EdgePod};
use super::stats::{self, PodStats, StatsClient};
use super::status::{Part, PoolPart};
use crate::build::names::{self, Component};
use crate::crd::MediaCluster;
use crate::crd::v1alpha1::{EdgePool, PoolAutoscalingStatus, ScaleRecord, ScalingMetric};
use crate::metrics::Metrics;

/// The autoscaler's field manager: it owns `spec.replicas` of viewer- and
/// bandwidth-scaled edge Deployments and its fields of the status.
pub const MANAGER: &str = "fleetcast-autoscaler";
/// Stats requests in flight at once.
const STATS_PARALLELISM: usize = 32;

/// Settings of the loop.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Time between evaluations (HPA: 15 s).
    pub interval: Duration,
    /// How long one `/api/stats` request may take.
    pub stats_timeout: Duration,
    /// The port of every edge pod's admin listener (the media config's
    /// `admin.listen`), where `/api/stats` is.
    pub stats_port: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            stats_timeout: Duration::from_secs(2),
            stats_port: fleetcast_media::config::DEFAULT_ADMIN_PORT,
        }
    }
}

/// Deployments whose `replicas` this process has taken over for the
/// autoscaler (shared with the reconciler, which claims before it stops
/// writing the field itself, so the count never falls back to the default).
#[derive(Debug, Clone, Default)]
pub struct Claims(Arc<Mutex<HashSet<(String, String)>>>);

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `namespace/name` was claimed.
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        self.lock()
            .contains(&(namespace.to_owned(), name.to_owned()))
    }

    /// Records a claim.
    pub fn insert(&self, namespace: &str, name: &str) {
        self.lock().insert((namespace.to_owned(), name.to_owned()));
    }

    /// Forgets a claim (the pool is no longer scaled by the loop).
    pub fn remove(&self, namespace: &str, name: &str) {
        self.lock().remove(&(namespace.to_owned(), name.to_owned()));
    }
}

/// True when the loop (not an HPA) scales this pool.
pub fn loop_scaled(pool: &EdgePool) -> bool {
    pool.autoscaling
        .as_ref()
        .is_some_and(|a| a.metric != ScalingMetric::Cpu)
}

/// Sets a Deployment's `spec.replicas` under the autoscaler's field manager
/// (forcing: the reconciler stops writing the field for these pools).
pub async fn apply_replicas(
    client: &Client,
    namespace: &str,
    name: &str,
    replicas: i32,
) -> kube::Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let patch = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": { "replicas": replicas },
    });
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}

/// What the loop reads from the controller's caches.
pub struct Caches {
    /// MediaClusters.
    pub mcs: Store<MediaCluster>,
    /// Edge pods (metadata and status).
    pub pods: Store<Pod>,
    /// Workloads (spec.replicas kept).
    pub deployments: Store<Deployment>,
}

/// The loop's state.
pub struct Autoscaler {
    client: Client,
    caches: Caches,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    settings: Settings,
    claims: Claims,
    stats: StatsClient,
    histories: HashMap<(String, String, String), History>,
    start: Instant,
}

/// Key of a pool: namespace, MediaCluster, pool.
type PoolKey = (String, String, String);

impl Autoscaler {
    /// A loop over `caches`.
    pub fn new(
        client: Client,
        caches: Caches,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        settings: Settings,
        claims: Claims,
    ) -> Self {
        Self {
            client,
            caches,
            recorder,
            metrics,
            stats: StatsClient::new(settings.stats_timeout),
            settings,
            claims,
            histories: HashMap::new(),
            start: Instant::now(),
        }
    }

    /// Evaluates every interval until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => self.tick().await,
            }
        }
    }

    /// One evaluation of every MediaCluster.
    pub async fn tick(&mut self) {
        // Every edge pod's stats at once (bounded), so pods that time out
        // delay the tick by one timeout, not one per pool.
        let all = self.read_stats().await;
        let mut seen = HashSet::new();
        for mc in self.caches.mcs.state() {
            if mc.spec.paused || mc.metadata.deletion_timestamp.is_some() {
                continue;
            }
            self.evaluate(&mc, &all, &mut seen).await;
        }
        // Forget pools that are gone or no longer scaled by the loop.
        self.histories.retain(|key, _| seen.contains(key));
    }

    async fn evaluate(
        &mut self,
        mc: &MediaCluster,
        all: &BTreeMap<(String, String), PodStats>,
        seen: &mut HashSet<PoolKey>,
    ) {
        let (Some(namespace), Some(uid)) = (mc.namespace(), mc.uid()) else {
            return;
        };
        let name = mc.name_any();
        let mut parts = Vec::new();
        let mut events = Vec::new();
        for pool in &mc.spec.edges {
            let pods = self.pods_of(&namespace, &name, &pool.name);
            let stats: BTreeMap<String, PodStats> = pods
                .iter()
                .filter_map(|p| {
                    let s = all.get(&(namespace.clone(), p.name.clone()))?;
                    Some((p.name.clone(), *s))
                })
                .collect();
            let reported: Vec<&PodStats> = stats.values().collect();
            let sum = |f: fn(&PodStats) -> u64| stats::total(&reported, f);
            let mut part = PoolPart {
                name: pool.name.clone(),
                viewers: sum(|s| s.viewers),
                egress_bits_per_second: sum(|s| s.egress_bits_per_second),
                autoscaling: None,
            };
            if loop_scaled(pool) {
                let key = (namespace.clone(), name.clone(), pool.name.clone());
                seen.insert(key.clone());
                let previous = mc
                    .status
                    .as_ref()
                    .and_then(|s| s.edges.iter().find(|p| p.name == pool.name))
                    .and_then(|p| p.autoscaling.as_ref());
                if let Some((status, event)) =
                    self.scale(&key, &uid, pool, &pods, &stats, previous).await
                {
                    part.autoscaling = Some(status);
                    events.extend(event);
                }
            }
            parts.push(part);
        }
        let part = Part::new(parts);
        if part.differs_from(mc.status.as_ref())
            && let Err(e) = self.write_status(mc, &namespace, &part).await
        {
            self.metrics.error("autoscale_status");
            warn!(mediacluster = %names::display(mc), error = %e, "writing autoscaling status");
        }
        for (type_, reason, note) in events {
            self.event(mc, type_, reason, note).await;
        }
    }

    fn pods_of(&self, namespace: &str, mc: &str, pool: &str) -> Vec<EdgePod> {
        let selector = names::selector(mc, Component::Edge(pool));
        let mut pods: Vec<EdgePod> = self
            .caches
            .pods
            .state()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
            .filter(|p| {
                let labels = p.labels();
                selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .map(|p| EdgePod::of(p))
            .collect();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        pods
    }

    /// `/api/stats` of every cached edge pod that runs, by namespace and name.
    async fn read_stats(&self) -> BTreeMap<(String, String), PodStats> {
        let port = self.settings.stats_port;
        let requests: Vec<_> = self
            .caches
            .pods
            .state()
            .iter()
            .filter_map(|p| {
                let addr = EdgePod::of(p).stats_address(port)?;
                Some(((p.namespace().unwrap_or_default(), p.name_any()), addr))
            })
            .map(|(name, addr)| {
                let client = self.stats.clone();
                async move { (name, client.get(addr).await) }
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(requests)
            .buffer_unordered(STATS_PARALLELISM)
            .collect()
            .await;
        let mut out = BTreeMap::new();
        for (name, result) in results {
            match result {
                Ok(s) => {
                    out.insert(name, s);
                }
                Err(e) => {
                    self.metrics.autoscale_stats_failures.inc();
                    warn!(pod = %format!("{}/{}", name.0, name.1), error = %e, "reading edge stats");
                }
            }
        }
        out
    }

    /// Decides one pool and applies the decision; returns its status and the
    /// Event to publish when the replicas changed (or could not be changed).
    async fn scale(
        &mut self,
        key: &PoolKey,
        uid: &str,
        pool: &EdgePool,
        pods: &[EdgePod],
        stats: &BTreeMap<String, PodStats>,
        previous: Option<&PoolAutoscalingStatus>,
    ) -> Option<(
        PoolAutoscalingStatus,
        Option<(EventType, &'static str, String)>,
    )> {
        let a = pool.autoscaling.as_ref()?;
        let (namespace, mc, _) = key;
        let deployment_name = names::edge(mc, &pool.name);
        let deployment = self
            .caches
            .deployments
            .get(&ObjectRef::new(&deployment_name).within(namespace))
            .filter(|d| {
                d.owner_references()
                    .iter()
                    .any(|o| o.uid == uid && o.controller == Some(true))
            })?;
        let current = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        self.metrics.autoscale_evaluations.inc();
        let mut report = PoolAutoscalingStatus {
            metric: a.metric,
            target: a.target,
            current_replicas: current,
            desired_replicas: current,
            last_scale: previous.and_then(|p| p.last_scale.clone()),
            ..PoolAutoscalingStatus::default()
        };
        let behavior = match behavior::from_spec(a.behavior.as_ref()) {
            Ok(b) => b,
            Err(e) => {
                // The reconciler reports the spec as invalid; change nothing.
                "InvalidAutoscalingBehavior".clone_into(&mut report.reason);
                report.message = e.to_string();
                return Some((report, None));
            }
        };
        let metrics: Vec<decision::PodMetric> = pods
            .iter()
            .map(|p| p.metric(stats.get(&p.name), a.metric))
            .collect();
        let now = self.start.elapsed();
        let history = self
            .histories
            .entry(key.clone())
            .or_insert_with(|| History::seeded(now, current));
        let d = decision::decide(
            history,
            &Input {
                now,
                current,
                min: a.min_replicas,
                max: a.max_replicas,
                target: f64::from(a.target),
                pods: &metrics,
                behavior: &behavior,
            },
        );
        if let Some(p) = &d.proposal {
            report.current_average = Some((p.average * 100.0).round() / 100.0);
            report.pods_measured = count(p.measured);
            report.pods_missing = count(p.missing);
            report.pods_not_started = count(p.unready);
        }
        report.desired_replicas = d.desired;
        d.reason.clone_into(&mut report.reason);
        report.message.clone_from(&d.message);
        if !d.rescale(current) {
            return Some((report, None));
        }
        if d.desired < current {
            // The emptiest edges go first.
            self.set_deletion_costs(namespace, pods, stats).await;
        }
        let event = self
            .apply_decision(
                namespace,
                &deployment_name,
                &pool.name,
                current,
                d,
                &mut report,
            )
            .await;
        Some((report, Some(event)))
    }

    /// Writes the decided replicas; returns the Event to publish.
    async fn apply_decision(
        &self,
        namespace: &str,
        deployment_name: &str,
        pool: &str,
        current: i32,
        d: decision::Decision,
        report: &mut PoolAutoscalingStatus,
    ) -> (EventType, &'static str, String) {
        let what = match report.metric {
            ScalingMetric::Bandwidth => "Mbit/s",
            _ => "viewers",
        };
        let note = format!(
            "pool {pool}: {current} -> {} replicas ({}; {what} per pod): {}",
            d.desired, d.reason, d.message
        );
        if let Err(e) = apply_replicas(&self.client, namespace, deployment_name, d.desired).await {
            self.metrics.error("autoscale_apply_deployment");
            warn!(deployment = %deployment_name, error = %e, "scaling");
            report.desired_replicas = current;
            "FailedRescale".clone_into(&mut report.reason);
            report.message = format!("setting {} replicas failed: {e}", d.desired);
            return (
                EventType::Warning,
                "FailedRescale",
                format!("{note}; failed: {e}"),
            );
        }
        self.claims.insert(namespace, deployment_name);
        let up = d.desired > current;
        self.metrics.scaled(up);
        info!(deployment = %deployment_name, from = current, to = d.desired, reason = d.reason, "scaled");
        report.last_scale = Some(ScaleRecord {
            time: Time(Timestamp::now()),
            from_replicas: current,
            to_replicas: d.desired,
            reason: d.reason.to_owned(),
            message: d.message,
        });
        let reason = if up { "ScaledUp" } else { "ScaledDown" };
        (EventType::Normal, reason, note)
    }

    async fn set_deletion_costs(
        &self,
        namespace: &str,
        pods: &[EdgePod],
        stats: &BTreeMap<String, PodStats>,
    ) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        for (pod, cost) in pods::deletion_cost_updates(pods, stats) {
            let patch =
                json!({ "metadata": { "annotations": { DELETION_COST_ANNOTATION: cost } } });
            if let Err(e) = api
                .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                self.metrics.error("autoscale_deletion_cost");
                warn!(pod = %pod, error = %e, "setting the pod deletion cost");
            }
        }
    }

    async fn write_status(
        &self,
        mc: &MediaCluster,
        namespace: &str,
        part: &Part,
    ) -> kube::Result<()> {
        let api: Api<MediaCluster> = Api::namespaced(self.client.clone(), namespace);
        let patch = json!({
            "apiVersion": MediaCluster::api_version(&()),
            "kind": MediaCluster::kind(&()),
            "status": part,
        });
        api.patch_status(
            &mc.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map(|_| ())
    }

    async fn event(&self, mc: &MediaCluster, type_: EventType, reason: &str, mut note: String) {
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Scale".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &mc.object_ref(&())).await {
            self.metrics.error("event");
            warn!(mediacluster = %names::display(mc), error = %e, "publishing event");
        }
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
