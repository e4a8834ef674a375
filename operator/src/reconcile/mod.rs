//! The controller: for each MediaCluster, build the desired children, apply
//! them, prune what is no longer desired, report status and Events. Children
//! are watched, so a hand edit or deletion wakes the owner's reconcile and is
//! put back.

pub mod apply;
pub mod observe;
pub mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use self::apply::{Change, Versions};
use self::observe::Stores;
use self::status::{Observed, Outcome, Workload};
use crate::autoscale::run::{self as autoscaler, Autoscaler, Caches, Claims};
use crate::build::names::{self, MANAGER};
use crate::build::{self, Child, Inputs};
use crate::crd::MediaCluster;
use crate::crd::v1alpha1::Autoscaling;
use crate::metrics::Metrics;
use crate::{Error, Result};

/// Periodic resync, on top of watch-driven reconciles.
const RESYNC: Duration = Duration::from_mins(5);
/// Longest Event note the API accepts is 1 KiB.
const NOTE_MAX: usize = 1000;

/// Shared by every reconcile.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Publishes Events on MediaClusters.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Watch caches of the children.
    pub stores: Stores,
    /// Image tag when a MediaCluster names none.
    pub default_tag: String,
    /// Deployments whose replicas the autoscaler owns.
    pub claims: Claims,
    /// The operator's namespace (NetworkPolicies let it reach the admin port).
    pub operator_namespace: Option<String>,
    versions: Versions,
}

/// Settings of a controller run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch one namespace only; all when `None`.
    pub namespace: Option<String>,
    /// Image tag when a MediaCluster names none.
    pub default_tag: String,
    /// Name in Events' reportingInstance.
    pub instance: String,
    /// MediaClusters reconciled at once.
    pub concurrency: u16,
    /// The viewer and bandwidth autoscaler.
    pub autoscale: autoscaler::Settings,
    /// The operator's own namespace, when known.
    pub operator_namespace: Option<String>,
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until `shutdown` resolves. Calls `on_ready` once the
/// caches are filled and reconciles start.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    on_ready: impl FnOnce() + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = settings.namespace.as_deref();
    let managed =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));

    let (mc_reader, mc_writer) = reflector::store();
    // Only spec changes (generation) wake a reconcile; our own status writes do not.
    let mcs = watcher(
        scoped::<MediaCluster>(&client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|mc: &mut MediaCluster| mc.managed_fields_mut().clear())
    .reflect(mc_writer)
    .applied_objects()
    .predicate_filter(predicates::generation, PredicateConfig::default());

    let (deployments, deployment_writer) = reflector::store();
    let deployment_events = watcher(scoped::<Deployment>(&client, ns), managed.clone())
        .default_backoff()
        .modify(observe::trim_deployment)
        .reflect(deployment_writer)
        .touched_objects();
    let (statefulsets, statefulset_writer) = reflector::store();
    let statefulset_events = watcher(scoped::<StatefulSet>(&client, ns), managed.clone())
        .default_backoff()
        .modify(observe::trim_statefulset)
        .reflect(statefulset_writer)
        .touched_objects();
    let (services, service_events) = meta_stream::<Service>(&client, ns, &managed);
    let (config_maps, config_map_events) = meta_stream::<ConfigMap>(&client, ns, &managed);
    let (pdbs, pdb_events) = meta_stream::<PodDisruptionBudget>(&client, ns, &managed);
    let (hpas, hpa_events) = meta_stream::<HorizontalPodAutoscaler>(&client, ns, &managed);
    let (network_policies, network_policy_events) =
        meta_stream::<NetworkPolicy>(&client, ns, &managed);
    let stores = Stores {
        deployments,
        statefulsets,
        services,
        config_maps,
        pdbs,
        hpas,
        network_policies,
    };
    let reporter = Reporter {
        controller: MANAGER.to_owned(),
        instance: Some(settings.instance.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let claims = Claims::default();
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: recorder.clone(),
        metrics: metrics.clone(),
        stores: stores.clone(),
        default_tag: settings.default_tag.clone(),
        claims: claims.clone(),
        operator_namespace: settings.operator_namespace.clone(),
        versions: Versions::default(),
    });

    // One stop for the controller and the autoscaler beside it.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let autoscale_task = spawn_autoscaler(
        &client,
        &settings,
        ns,
        (mc_reader.clone(), stores.deployments.clone()),
        (recorder, metrics, claims),
        stopped(stop_rx.clone()),
    );

    let ready_stores = stores.clone();
    tokio::spawn(async move {
        if ready_stores.ready().await {
            on_ready();
        }
    });

    Controller::for_stream(mcs, mc_reader)
        .with_config(ControllerConfig::default().concurrency(settings.concurrency))
        .owns_stream(deployment_events)
        .owns_stream(statefulset_events)
        .owns_stream(service_events)
        .owns_stream(config_map_events)
        .owns_stream(pdb_events)
        .owns_stream(hpa_events)
        .owns_stream(network_policy_events)
        .graceful_shutdown_on(stopped(stop_rx))
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "controller");
            }
        })
        .await;
    autoscale_task.abort();
}

/// Starts the viewer and bandwidth autoscaler beside the controller, with a
/// watch cache of the edge pods (their addresses and deletion cost; pods are
/// not owned by the MediaCluster and do not trigger reconciles).
fn spawn_autoscaler(
    client: &Client,
    settings: &Settings,
    ns: Option<&str>,
    (mcs, deployments): (Store<MediaCluster>, Store<Deployment>),
    (recorder, metrics, claims): (Recorder, Arc<Metrics>, Claims),
    stop: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (pods, pod_writer) = reflector::store();
    let edge_pods = watcher::Config::default().labels(&format!(
        "app.kubernetes.io/managed-by={MANAGER},app.kubernetes.io/component=edge"
    ));
    let pod_events = watcher(scoped::<Pod>(client, ns), edge_pods)
        .default_backoff()
        .modify(observe::trim_pod)
        .reflect(pod_writer)
        .touched_objects();
    let autoscaler = Autoscaler::new(
        client.clone(),
        Caches {
            mcs,
            pods,
            deployments,
        },
        recorder,
        metrics,
        settings.autoscale,
        claims,
    );
    tokio::spawn(async move {
        let drive_pods = pod_events.for_each(|_| async {});
        tokio::select! {
            () = autoscaler.run(stop) => {}
            () = drive_pods => {}
        }
    })
}

type MetaStream<K> = (
    Store<kube::core::PartialObjectMeta<K>>,
    futures::stream::BoxStream<'static, Result<kube::core::PartialObjectMeta<K>, watcher::Error>>,
);

fn meta_stream<K>(client: &Client, ns: Option<&str>, config: &watcher::Config) -> MetaStream<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    // An Api of PartialObjectMeta makes metadata-only requests.
    let stream = watcher(
        scoped::<kube::core::PartialObjectMeta<K>>(client, ns),
        config.clone(),
    )
    .default_backoff()
    .modify(observe::trim_meta)
    .reflect(writer)
    .touched_objects()
    .boxed();
    (reader, stream)
}

/// One reconcile of one MediaCluster.
pub async fn reconcile(mc: Arc<MediaCluster>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_inner(&mc, &ctx).await;
    ctx.metrics.reconciled(started.elapsed());
    result
}

/// After a failed reconcile: count it and retry soon.
#[allow(clippy::needless_pass_by_value)] // The signature Controller::run asks for.
pub fn error_policy(mc: Arc<MediaCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.error(&error.metric_label());
    warn!(mediacluster = %names::display(&mc), error = %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_inner(mc: &MediaCluster, ctx: &Context) -> Result<Action> {
    let namespace = mc
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(mc.name_any()))?;
    if mc.metadata.deletion_timestamp.is_some() {
        // Being deleted: the garbage collector removes the children; writing
        // them again would fight it.
        return Ok(Action::await_change());
    }
    if mc.spec.paused {
        ctx.write_status(mc, &ctx.stores.workloads(mc), &Outcome::Paused)
            .await?;
        return Ok(Action::requeue(RESYNC));
    }
    let inputs = Inputs {
        default_tag: ctx.default_tag.clone(),
        operator_namespace: ctx.operator_namespace.clone(),
    };
    let desired = match build::desired(mc, &inputs) {
        Ok(desired) => desired,
        Err(e) => {
            // The spec cannot be wired: say so, change nothing, wait for a new spec.
            ctx.metrics.error(e.reason());
            ctx.event(
                mc,
                EventType::Warning,
                e.reason(),
                "Validate",
                e.to_string(),
            )
            .await;
            let outcome = Outcome::Invalid {
                reason: e.reason().to_owned(),
                message: e.to_string(),
            };
            ctx.write_status(mc, &ctx.stores.workloads(mc), &outcome)
                .await?;
            return Ok(Action::await_change());
        }
    };

    let unborn = match claim_replicas(mc, ctx, &namespace).await {
        Ok(unborn) => unborn,
        Err(e) => return Err(ctx.failed(mc, e).await),
    };
    let owned = ctx.stores.owned(mc);
    let known = |key: &build::ChildKey| {
        owned
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.clone())
    };
    let applied = match apply::apply_all(
        &ctx.client,
        &ctx.versions,
        &namespace,
        &desired.children,
        known,
    )
    .await
    {
        Ok(applied) => applied,
        Err(e) => return Err(ctx.failed(mc, e).await),
    };
    if let Err(e) = claim_created(ctx, &namespace, &unborn, &applied).await {
        return Err(ctx.failed(mc, e).await);
    }
    let stale = build::prune_set(
        &desired.keys(),
        &owned.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
    );
    for key in &stale {
        if let Err(e) = apply::delete(&ctx.client, &ctx.versions, &namespace, key).await {
            return Err(ctx.failed(mc, e).await);
        }
        ctx.metrics.write(key.kind.as_str(), "pruned");
    }
    ctx.report_writes(mc, &applied, &stale).await;

    // The apply responses are fresher than the caches; skipped children come from the caches.
    let observed = observed_from(mc, &applied, &ctx.stores.workloads(mc));
    ctx.write_status(mc, &observed, &Outcome::Applied).await?;
    Ok(Action::requeue(RESYNC))
}

/// Before the reconciler stops writing `replicas` of a pool that the
/// autoscaler now scales, the autoscaler takes the field over at its current
/// value (within the bounds), so it never falls back to the default of 1.
/// Returns the unclaimed Deployments that do not exist yet, with their bounds.
async fn claim_replicas<'a>(
    mc: &'a MediaCluster,
    ctx: &Context,
    namespace: &str,
) -> Result<Vec<(String, &'a Autoscaling)>> {
    let name = mc.name_any();
    let mut unborn = Vec::new();
    for pool in &mc.spec.edges {
        let deployment = names::edge(&name, &pool.name);
        let Some(a) = pool
            .autoscaling
            .as_ref()
            .filter(|_| autoscaler::loop_scaled(pool))
        else {
            ctx.claims.remove(namespace, &deployment);
            continue;
        };
        if ctx.claims.contains(namespace, &deployment) {
            continue;
        }
        let cached = ctx
            .stores
            .deployments
            .get(&reflector::ObjectRef::new(&deployment).within(namespace));
        let Some(current) = cached.and_then(|d| d.spec.as_ref().and_then(|s| s.replicas)) else {
            // Not created yet: claimed once this reconcile's apply has created it.
            unborn.push((deployment, a));
            continue;
        };
        claim(ctx, namespace, &deployment, claim_at(Some(current), a)).await?;
    }
    Ok(unborn)
}

/// A Deployment this reconcile created without `replicas` runs Kubernetes'
/// default of 1: the autoscaler takes the field over at once, within the
/// bounds (so at `minReplicas`), rather than at its next evaluation.
async fn claim_created(
    ctx: &Context,
    namespace: &str,
    unborn: &[(String, &Autoscaling)],
    applied: &[(Child, Change)],
) -> Result<()> {
    for (deployment, a) in unborn {
        let created = applied.iter().find_map(|(child, _)| match child {
            Child::Deployment(d) if d.metadata.name.as_ref() == Some(deployment) => Some(d),
            _ => None,
        });
        if let Some(d) = created {
            let current = d.spec.as_ref().and_then(|s| s.replicas);
            claim(ctx, namespace, deployment, claim_at(current, a)).await?;
        }
    }
    Ok(())
}

/// The count the autoscaler takes `replicas` over at: the current one (the
/// API server's default of 1 when unset), within the bounds.
fn claim_at(current: Option<i32>, a: &Autoscaling) -> i32 {
    current
        .unwrap_or(1)
        .clamp(a.min_replicas, a.max_replicas.max(a.min_replicas))
}

async fn claim(ctx: &Context, namespace: &str, deployment: &str, replicas: i32) -> Result<()> {
    autoscaler::apply_replicas(&ctx.client, namespace, deployment, replicas)
        .await
        .map_err(|source| Error::Apply {
            kind: build::Kind::Deployment,
            namespace: namespace.to_owned(),
            name: deployment.to_owned(),
            source,
        })?;
    ctx.claims.insert(namespace, deployment);
    Ok(())
}

fn observed_from(mc: &MediaCluster, applied: &[(Child, Change)], cached: &Observed) -> Observed {
    let name = mc.name_any();
    let workload = |wanted: &str| {
        applied.iter().find_map(|(child, _)| match child {
            Child::Deployment(d) if child.name() == wanted => Some(Workload::from(d)),
            Child::StatefulSet(s) if child.name() == wanted => Some(Workload::from(s)),
            _ => None,
        })
    };
    Observed {
        origin: workload(&names::origin(&name)).or(cached.origin),
        pools: mc
            .spec
            .edges
            .iter()
            .map(|p| {
                let from_cache = cached
                    .pools
                    .iter()
                    .find(|(name, _)| *name == p.name)
                    .and_then(|(_, w)| *w);
                (
                    p.name.clone(),
                    workload(&names::edge(&name, &p.name)).or(from_cache),
                )
            })
            .collect(),
    }
}

impl Context {
    async fn event(
        &self,
        mc: &MediaCluster,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let mut note = note;
        if note.len() > NOTE_MAX {
            let mut cut = NOTE_MAX;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &mc.object_ref(&())).await {
            // Events are best effort; the status carries the same facts.
            self.metrics.error("event");
            warn!(mediacluster = %names::display(mc), error = %e, "publishing event");
        }
    }

    /// Reports a failed apply or prune on the MediaCluster and hands the error back.
    async fn failed(&self, mc: &MediaCluster, error: Error) -> Error {
        self.event(
            mc,
            EventType::Warning,
            error.reason(),
            "Reconcile",
            error.to_string(),
        )
        .await;
        let outcome = Outcome::Failed {
            reason: error.reason().to_owned(),
            message: error.to_string(),
        };
        if let Err(e) = self
            .write_status(mc, &self.stores.workloads(mc), &outcome)
            .await
        {
            warn!(mediacluster = %names::display(mc), error = %e, "writing failure status");
        }
        error
    }

    async fn report_writes(
        &self,
        mc: &MediaCluster,
        applied: &[(Child, Change)],
        stale: &[build::ChildKey],
    ) {
        let list = |change: Change| -> Vec<String> {
            applied
                .iter()
                .filter(|(_, c)| *c == change)
                .map(|(child, _)| child.key().to_string())
                .collect()
        };
        for (change, reason, action) in [
            (Change::Created, "Created", "created"),
            (Change::Updated, "Updated", "updated"),
        ] {
            let objects = list(change);
            for (child, c) in applied {
                if *c == change {
                    self.metrics.write(child.kind().as_str(), action);
                }
            }
            if !objects.is_empty() {
                info!(mediacluster = %names::display(mc), objects = %objects.join(", "), "{action}");
                self.event(
                    mc,
                    EventType::Normal,
                    reason,
                    "Apply",
                    format!("{action} {}", objects.join(", ")),
                )
                .await;
            }
        }
        if !stale.is_empty() {
            let objects: Vec<String> = stale.iter().map(ToString::to_string).collect();
            info!(mediacluster = %names::display(mc), objects = %objects.join(", "), "pruned");
            self.event(
                mc,
                EventType::Normal,
                "Pruned",
                "Prune",
                format!("deleted {}", objects.join(", ")),
            )
            .await;
        }
    }

    /// Writes the status when it differs from what the object has.
    async fn write_status(
        &self,
        mc: &MediaCluster,
        observed: &Observed,
        outcome: &Outcome,
    ) -> Result<()> {
        let status = status::compute(mc, observed, outcome, Timestamp::now());
        if mc.status.as_ref().map(status::reconciler_part).as_ref() == Some(&status) {
            return Ok(());
        }
        let namespace = mc.namespace().unwrap_or_default();
        let api: Api<MediaCluster> = Api::namespaced(self.client.clone(), &namespace);
        let patch = serde_json::json!({
            "apiVersion": MediaCluster::api_version(&()),
            "kind": MediaCluster::kind(&()),
            "status": status,
        });
        api.patch_status(
            &mc.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| Error::Status {
            namespace,
            name: mc.name_any(),
            source,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_keep_the_count_within_the_bounds() {
        let a = Autoscaling {
            min_replicas: 2,
            max_replicas: 10,
            metric: crate::crd::v1alpha1::ScalingMetric::Viewers,
            target: 100,
            behavior: None,
        };
        // A Deployment just created without replicas starts at minReplicas.
        assert_eq!(claim_at(None, &a), 2);
        assert_eq!(claim_at(Some(1), &a), 2);
        assert_eq!(claim_at(Some(5), &a), 5);
        assert_eq!(claim_at(Some(12), &a), 10);
    }
}
