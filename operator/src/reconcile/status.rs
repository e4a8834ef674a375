//! The status a MediaCluster reports, computed from what was observed: pure,
//! so the rules ("no pods running means not Ready") are tested without a
//! cluster.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::build::names;
use crate::crd::MediaCluster;
use crate::crd::v1alpha1::{
    ComponentStatus, Endpoints, MediaClusterStatus, PlaybackEndpoint, PoolStatus,
};

/// Condition types.
pub const READY: &str = "Ready";
/// Condition types.
pub const PROGRESSING: &str = "Progressing";
/// Condition types.
pub const DEGRADED: &str = "Degraded";

/// What a workload (Deployment or StatefulSet) reports about its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Workload {
    /// Pods it should have.
    pub desired: i32,
    /// Pods ready.
    pub ready: i32,
    /// Pods on the current template.
    pub updated: i32,
    /// Whether its controller has seen its latest spec.
    pub current: bool,
    /// Whether its rollout exceeded its progress deadline.
    pub stalled: bool,
}

impl Workload {
    fn settled(self) -> bool {
        self.current && self.ready >= self.desired && self.updated >= self.desired
    }

    fn component(self) -> ComponentStatus {
        ComponentStatus {
            desired_replicas: self.desired,
            ready_replicas: self.ready,
            updated_replicas: self.updated,
        }
    }
}

impl From<&Deployment> for Workload {
    fn from(d: &Deployment) -> Self {
        let status = d.status.clone().unwrap_or_default();
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let stalled = status.conditions.iter().flatten().any(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        Workload {
            desired,
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            current: status.observed_generation >= d.metadata.generation,
            stalled,
        }
    }
}

impl From<&StatefulSet> for Workload {
    fn from(s: &StatefulSet) -> Self {
        let status = s.status.clone().unwrap_or_default();
        Workload {
            desired: s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            current: status.observed_generation >= s.metadata.generation,
            stalled: false,
        }
    }
}

/// What the reconcile did this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The desired state was applied.
    Applied,
    /// `spec.paused`: nothing was changed.
    Paused,
    /// The spec cannot be wired; nothing was changed.
    Invalid {
        /// CamelCase reason.
        reason: String,
        /// For people.
        message: String,
    },
    /// Applying or pruning failed part-way.
    Failed {
        /// CamelCase reason.
        reason: String,
        /// For people.
        message: String,
    },
}

/// The workloads found: the origins' and each pool's (in spec order; `None` when missing).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The origin Deployment or StatefulSet.
    pub origin: Option<Workload>,
    /// Each pool of the spec, by name.
    pub pools: Vec<(String, Option<Workload>)>,
}

/// Builds the status, keeping each condition's transition time when its status did not change.
pub fn compute(
    mc: &MediaCluster,
    observed: &Observed,
    outcome: &Outcome,
    now: Timestamp,
) -> MediaClusterStatus {
    let generation = mc.metadata.generation;
    let previous = mc
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let name = mc.metadata.name.as_deref().unwrap_or_default();
    let namespace = mc.metadata.namespace.as_deref().unwrap_or_default();

    let origin = observed.origin.unwrap_or_default();
    let edges: Vec<PoolStatus> = observed
        .pools
        .iter()
        .map(|(pool, w)| PoolStatus {
            name: pool.clone(),
            replicas: w.unwrap_or_default().component(),
            ..PoolStatus::default()
        })
        .collect();
    let edge_ready: i32 = edges.iter().map(|p| p.replicas.ready_replicas).sum();
    let edge_desired: i32 = edges.iter().map(|p| p.replicas.desired_replicas).sum();

    let Findings {
        missing,
        not_ready,
        stalled,
        all_settled,
    } = findings(observed);

    let (ready, progressing, degraded) = match outcome {
        Outcome::Invalid { reason, message } | Outcome::Failed { reason, message } => (
            (
                false,
                reason.clone(),
                format!("the desired state was not applied: {message}"),
            ),
            (false, reason.clone(), message.clone()),
            (true, reason.clone(), message.clone()),
        ),
        Outcome::Paused => (
            ready_condition(all_settled, &missing, &not_ready),
            (
                false,
                "Paused".to_owned(),
                "spec.paused is true: the operator changes nothing".to_owned(),
            ),
            stalled_condition(&stalled),
        ),
        Outcome::Applied => (
            ready_condition(all_settled, &missing, &not_ready),
            if all_settled {
                (
                    false,
                    "Complete".to_owned(),
                    "every workload has its desired pods ready".to_owned(),
                )
            } else {
                (
                    true,
                    "RollingOut".to_owned(),
                    waiting_message(&missing, &not_ready),
                )
            },
            stalled_condition(&stalled),
        ),
    };
    let conditions = [
        (READY, ready),
        (PROGRESSING, progressing),
        (DEGRADED, degraded),
    ]
    .into_iter()
    .map(|(type_, (status, reason, message))| {
        condition(previous, type_, status, reason, message, generation, now)
    })
    .collect();

    let endpoints = endpoints(mc, name, namespace);

    MediaClusterStatus {
        observed_generation: generation,
        conditions,
        origin: observed.origin.map(Workload::component),
        origins_ready: Some(format!("{}/{}", origin.ready, origin.desired)),
        edges_ready: Some(format!("{edge_ready}/{edge_desired}")),
        edges,
        // Viewers and egress are the autoscaler's fields (its own field manager).
        viewers: None,
        endpoints: Some(endpoints),
    }
}

/// The part of a status the reconciler writes: without the fields the
/// autoscaler owns (viewers, egress, scaling), which it writes under its own
/// field manager into the same entries of `status.edges`.
pub fn reconciler_part(status: &MediaClusterStatus) -> MediaClusterStatus {
    let mut s = status.clone();
    s.viewers = None;
    for pool in &mut s.edges {
        pool.viewers = None;
        pool.egress_bits_per_second = None;
        pool.autoscaling = None;
    }
    s
}

/// What is missing, not ready or stuck, for messages.
struct Findings {
    missing: Vec<String>,
    not_ready: Vec<String>,
    stalled: Vec<String>,
    all_settled: bool,
}

fn findings(observed: &Observed) -> Findings {
    let missing: Vec<String> = std::iter::once(("origins".to_owned(), observed.origin))
        .chain(
            observed
                .pools
                .iter()
                .map(|(p, w)| (format!("pool {p}"), *w)),
        )
        .filter(|(_, w)| w.is_none())
        .map(|(what, _)| what)
        .collect();
    let not_ready: Vec<String> = std::iter::once(("origins".to_owned(), observed.origin))
        .chain(observed.pools.iter().map(|(p, w)| (p.clone(), *w)))
        .filter_map(|(what, w)| {
            w.filter(|w| !w.settled())
                .map(|w| format!("{what} {}/{}", w.ready, w.desired))
        })
        .collect();
    let stalled: Vec<String> = observed
        .pools
        .iter()
        .filter(|(_, w)| w.is_some_and(|w| w.stalled))
        .map(|(p, _)| format!("pool {p}"))
        .chain(
            observed
                .origin
                .is_some_and(|w| w.stalled)
                .then(|| "origins".to_owned()),
        )
        .collect();
    // Truth first: without ready origins nothing can be ingested.
    let all_settled = missing.is_empty()
        && not_ready.is_empty()
        && observed.origin.is_some_and(|w| w.desired > 0);

    Findings {
        missing,
        not_ready,
        stalled,
        all_settled,
    }
}

/// Where to publish and play, by in-cluster DNS name.
fn endpoints(mc: &MediaCluster, name: &str, namespace: &str) -> Endpoints {
    let ingest = format!(
        "rtmp://{}:{}/live",
        names::service_host(&names::ingest(name), namespace),
        mc.spec.origin.ingest.rtmp_port
    );
    let playback = mc
        .spec
        .edges
        .iter()
        .map(|p| {
            let host = names::service_host(&names::edge(name, &p.name), namespace);
            PlaybackEndpoint {
                pool: p.name.clone(),
                rtmp: format!("rtmp://{host}:{}/live", p.service.ports.rtmp),
                http: format!("http://{host}:{}/live", p.service.ports.http),
            }
        })
        .collect();

    Endpoints { ingest, playback }
}

fn ready_condition(
    settled: bool,
    missing: &[String],
    not_ready: &[String],
) -> (bool, String, String) {
    if settled {
        (
            true,
            "AllReplicasReady".to_owned(),
            "origins and every edge pool have all their pods ready".to_owned(),
        )
    } else if !missing.is_empty() {
        (
            false,
            "WorkloadsMissing".to_owned(),
            format!("not created yet: {}", missing.join(", ")),
        )
    } else {
        (
            false,
            "ReplicasNotReady".to_owned(),
            waiting_message(missing, not_ready),
        )
    }
}

fn waiting_message(missing: &[String], not_ready: &[String]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("not created yet: {}", missing.join(", ")));
    }
    if !not_ready.is_empty() {
        parts.push(format!("ready/desired pods: {}", not_ready.join(", ")));
    }
    parts.join("; ")
}

fn stalled_condition(stalled: &[String]) -> (bool, String, String) {
    if stalled.is_empty() {
        (false, "AsExpected".to_owned(), "no errors".to_owned())
    } else {
        (
            true,
            "ProgressDeadlineExceeded".to_owned(),
            format!(
                "rollout stuck past its progress deadline: {}",
                stalled.join(", ")
            ),
        )
    }
}

fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: String,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_owned();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status,
        reason,
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The condition of this type, if set.
pub fn find<'a>(status: &'a MediaClusterStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::v1alpha1::{EdgePool, MediaClusterSpec};

    fn mc() -> MediaCluster {
        let mut mc = MediaCluster::new(
            "live",
            MediaClusterSpec {
                edges: vec![EdgePool::named("london"), EdgePool::named("tokyo")],
                ..MediaClusterSpec::default()
            },
        );
        mc.metadata.namespace = Some("video".into());
        mc.metadata.generation = Some(3);
        mc
    }

    #[allow(clippy::unnecessary_wraps)] // Reads as a table cell.
    fn w(desired: i32, ready: i32) -> Option<Workload> {
        Some(Workload {
            desired,
            ready,
            updated: ready,
            current: true,
            stalled: false,
        })
    }

    fn observed(
        origin: Option<Workload>,
        london: Option<Workload>,
        tokyo: Option<Workload>,
    ) -> Observed {
        Observed {
            origin,
            pools: vec![("london".into(), london), ("tokyo".into(), tokyo)],
        }
    }

    fn state(status: &MediaClusterStatus) -> [(String, String); 3] {
        [READY, PROGRESSING, DEGRADED].map(|t| {
            let c = find(status, t).unwrap();
            (c.status.clone(), c.reason.clone())
        })
    }

    fn s(status: &str, reason: &str) -> (String, String) {
        (status.to_owned(), reason.to_owned())
    }

    #[test]
    fn conditions_tell_the_truth() {
        let invalid = Outcome::Invalid {
            reason: "UpstreamCycle".into(),
            message: "a -> b -> a".into(),
        };
        let stalled = Some(Workload {
            desired: 2,
            ready: 0,
            updated: 2,
            current: true,
            stalled: true,
        });
        let table = [
            (
                "nothing created",
                observed(None, None, None),
                Outcome::Applied,
                [
                    s("False", "WorkloadsMissing"),
                    s("True", "RollingOut"),
                    s("False", "AsExpected"),
                ],
            ),
            (
                "created, no pods running",
                observed(w(2, 0), w(2, 0), w(2, 0)),
                Outcome::Applied,
                [
                    s("False", "ReplicasNotReady"),
                    s("True", "RollingOut"),
                    s("False", "AsExpected"),
                ],
            ),
            (
                "origins ready, one pool not",
                observed(w(2, 2), w(2, 2), w(2, 1)),
                Outcome::Applied,
                [
                    s("False", "ReplicasNotReady"),
                    s("True", "RollingOut"),
                    s("False", "AsExpected"),
                ],
            ),
            (
                "all ready",
                observed(w(2, 2), w(2, 2), w(3, 3)),
                Outcome::Applied,
                [
                    s("True", "AllReplicasReady"),
                    s("False", "Complete"),
                    s("False", "AsExpected"),
                ],
            ),
            (
                "stuck rollout",
                observed(w(2, 2), stalled, w(3, 3)),
                Outcome::Applied,
                [
                    s("False", "ReplicasNotReady"),
                    s("True", "RollingOut"),
                    s("True", "ProgressDeadlineExceeded"),
                ],
            ),
            (
                "invalid spec",
                observed(w(2, 2), w(2, 2), w(3, 3)),
                invalid,
                [
                    s("False", "UpstreamCycle"),
                    s("False", "UpstreamCycle"),
                    s("True", "UpstreamCycle"),
                ],
            ),
            (
                "paused and ready",
                observed(w(2, 2), w(2, 2), w(3, 3)),
                Outcome::Paused,
                [
                    s("True", "AllReplicasReady"),
                    s("False", "Paused"),
                    s("False", "AsExpected"),
                ],
            ),
        ];
        for (what, observed, outcome, want) in table {
            let status = compute(&mc(), &observed, &outcome, Timestamp::UNIX_EPOCH);
            assert_eq!(state(&status), want, "{what}");
            for c in &status.conditions {
                assert_eq!(c.observed_generation, Some(3), "{what}");
            }
            assert_eq!(status.observed_generation, Some(3));
        }
    }

    #[test]
    fn a_stale_workload_is_not_ready() {
        let stale = Some(Workload {
            desired: 2,
            ready: 2,
            updated: 2,
            current: false,
            stalled: false,
        });
        let status = compute(
            &mc(),
            &observed(stale, w(2, 2), w(2, 2)),
            &Outcome::Applied,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(find(&status, READY).unwrap().status, "False");
    }

    #[test]
    fn counts_and_endpoints() {
        let status = compute(
            &mc(),
            &observed(w(2, 1), w(2, 0), w(3, 2)),
            &Outcome::Applied,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(status.origins_ready.as_deref(), Some("1/2"));
        assert_eq!(status.edges_ready.as_deref(), Some("2/5"));
        assert_eq!(status.edges[1].replicas.ready_replicas, 2);
        let endpoints = status.endpoints.unwrap();
        assert_eq!(endpoints.ingest, "rtmp://live-ingest.video.svc:1935/live");
        assert_eq!(
            endpoints.playback[0].http,
            "http://live-edge-london.video.svc:8080/live"
        );
        assert_eq!(
            endpoints.playback[1].rtmp,
            "rtmp://live-edge-tokyo.video.svc:1935/live"
        );
        let none_ready = compute(
            &mc(),
            &observed(w(2, 0), w(2, 0), w(2, 0)),
            &Outcome::Applied,
            Timestamp::UNIX_EPOCH,
        );
        let msg = &find(&none_ready, READY).unwrap().message;
        assert!(
            msg.contains("origins 0/2") && msg.contains("tokyo 0/2"),
            "{msg}"
        );
    }

    #[test]
    fn transition_time_kept_while_status_holds() {
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = Timestamp::from_second(1_000).unwrap();
        let mut cluster = mc();
        let first = compute(
            &cluster,
            &observed(w(2, 0), w(2, 0), w(2, 0)),
            &Outcome::Applied,
            t0,
        );
        cluster.status = Some(first.clone());
        let same = compute(
            &cluster,
            &observed(w(2, 1), w(2, 0), w(2, 0)),
            &Outcome::Applied,
            t1,
        );
        assert_eq!(find(&same, READY).unwrap().last_transition_time, Time(t0));
        let ready = compute(
            &cluster,
            &observed(w(2, 2), w(2, 2), w(2, 2)),
            &Outcome::Applied,
            t1,
        );
        assert_eq!(find(&ready, READY).unwrap().last_transition_time, Time(t1));
        // Unchanged inputs give an equal status, so the operator skips the write.
        cluster.status = Some(ready.clone());
        assert_eq!(
            compute(
                &cluster,
                &observed(w(2, 2), w(2, 2), w(2, 2)),
                &Outcome::Applied,
                t1
            ),
            ready
        );
    }
}
