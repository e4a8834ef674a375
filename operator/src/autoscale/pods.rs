//! Edge pods as the autoscaler sees them (pure): where to read their stats,
//! how each counts in the decision (HPA's grouping of pods), and the
//! deletion cost that makes the ReplicaSet remove the emptiest edge first.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::Pod;

use super::decision::PodMetric;
use super::stats::PodStats;
use crate::crd::v1alpha1::ScalingMetric;

/// The ReplicaSet controller deletes pods with a lower cost first on scale-down.
pub const DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// One edge pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgePod {
    /// Pod name.
    pub name: String,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    pub phase: String,
    /// From the pod's status.
    pub ip: Option<IpAddr>,
    /// Being deleted.
    pub terminating: bool,
    /// The deletion cost annotation as it is now.
    pub deletion_cost: Option<String>,
}

impl EdgePod {
    /// From the Pod object.
    pub fn of(pod: &Pod) -> Self {
        let status = pod.status.as_ref();
        Self {
            name: pod.metadata.name.clone().unwrap_or_default(),
            phase: status
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".to_owned()),
            ip: status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok()),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            deletion_cost: pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DELETION_COST_ANNOTATION).cloned()),
        }
    }

    fn gone(&self) -> bool {
        self.terminating || matches!(self.phase.as_str(), "Failed" | "Succeeded")
    }

    /// Where its stats are served, when it runs and has an address.
    pub fn stats_address(&self, port: u16) -> Option<SocketAddr> {
        if self.gone() || self.phase == "Pending" {
            return None;
        }
        self.ip.map(|ip| SocketAddr::new(ip, port))
    }

    /// How it counts in the decision: terminating, failed and draining pods
    /// are left out, Pending pods are not started, running pods without stats
    /// are missing.
    pub fn metric(&self, stats: Option<&PodStats>, metric: ScalingMetric) -> PodMetric {
        if self.gone() || stats.is_some_and(|s| s.draining) {
            return PodMetric::Ignored;
        }
        if self.phase == "Pending" {
            return PodMetric::Unready;
        }
        match stats {
            None => PodMetric::Missing,
            Some(s) => PodMetric::Value(value(s, metric)),
        }
    }
}

/// The per-pod value of the metric: viewers, or egress in Mbit/s.
#[allow(clippy::cast_precision_loss)] // Counters far below 2^52.
pub fn value(stats: &PodStats, metric: ScalingMetric) -> f64 {
    match metric {
        ScalingMetric::Bandwidth => stats.egress_bits_per_second as f64 / 1e6,
        ScalingMetric::Viewers | ScalingMetric::Cpu => stats.viewers as f64,
    }
}

/// The deletion cost of a pod with `viewers`: the fewer viewers, the sooner it goes.
pub fn deletion_cost(viewers: u64) -> String {
    i32::try_from(viewers).unwrap_or(i32::MAX).to_string()
}

/// Pods whose deletion cost should change: `(name, cost)`.
pub fn deletion_cost_updates(
    pods: &[EdgePod],
    stats: &BTreeMap<String, PodStats>,
) -> Vec<(String, String)> {
    pods.iter()
        .filter(|p| !p.gone())
        .filter_map(|p| {
            let cost = deletion_cost(stats.get(&p.name)?.viewers);
            (p.deletion_cost.as_ref() != Some(&cost)).then(|| (p.name.clone(), cost))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    fn pod(name: &str, phase: &str, ip: Option<&str>, terminating: bool) -> EdgePod {
        EdgePod::of(&Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                deletion_timestamp: terminating.then_some(Time(Timestamp::UNIX_EPOCH)),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                phase: Some(phase.into()),
                pod_ip: ip.map(Into::into),
                ..PodStatus::default()
            }),
            ..Pod::default()
        })
    }

    fn stats(viewers: u64, bps: u64, draining: bool) -> PodStats {
        PodStats {
            viewers,
            egress_bits_per_second: bps,
            draining,
        }
    }

    #[test]
    fn pods_count_as_hpa_counts_them() {
        let s = stats(7, 2_500_000, false);
        let table = [
            (
                pod("a", "Running", Some("10.0.0.1"), false),
                Some(s),
                PodMetric::Value(7.0),
            ),
            (
                pod("b", "Running", Some("10.0.0.2"), false),
                None,
                PodMetric::Missing,
            ),
            (pod("c", "Pending", None, false), None, PodMetric::Unready),
            (
                pod("d", "Running", Some("10.0.0.4"), true),
                Some(s),
                PodMetric::Ignored,
            ),
            (
                pod("e", "Failed", Some("10.0.0.5"), false),
                None,
                PodMetric::Ignored,
            ),
            (
                pod("f", "Running", Some("10.0.0.6"), false),
                Some(stats(3, 0, true)),
                PodMetric::Ignored,
            ),
        ];
        for (p, st, want) in table {
            assert_eq!(
                p.metric(st.as_ref(), ScalingMetric::Viewers),
                want,
                "{}",
                p.name
            );
        }
        let a = pod("a", "Running", Some("10.0.0.1"), false);
        assert_eq!(
            a.metric(Some(&s), ScalingMetric::Bandwidth),
            PodMetric::Value(2.5)
        );
        assert_eq!(
            a.stats_address(8080),
            Some("10.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(
            pod("c", "Pending", Some("10.0.0.3"), false).stats_address(8080),
            None
        );
        assert_eq!(
            pod("d", "Running", Some("10.0.0.4"), true).stats_address(8080),
            None
        );
    }

    #[test]
    fn deletion_cost_follows_viewers() {
        let mut fresh = pod("a", "Running", Some("10.0.0.1"), false);
        fresh.deletion_cost = Some("3".into());
        let pods = [fresh, pod("b", "Running", Some("10.0.0.2"), false)];
        let stats = BTreeMap::from([
            ("a".to_owned(), stats(3, 0, false)),
            ("b".to_owned(), stats(0, 0, false)),
        ]);
        // a already says 3; b gets 0 and so goes first.
        assert_eq!(
            deletion_cost_updates(&pods, &stats),
            [("b".to_owned(), "0".to_owned())]
        );
        assert_eq!(deletion_cost(u64::MAX), i32::MAX.to_string());
    }
}
