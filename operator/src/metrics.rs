//! Prometheus metrics of the operator: reconciles, their duration, errors by
//! reason (a bounded label set), objects written, and leadership.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// From `Error::metric_label` or a spec error's reason.
    pub reason: String,
}

/// Label of the write counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabel {
    /// Kind of object.
    pub kind: String,
    /// `created`, `updated` or `pruned`.
    pub action: String,
}

/// Label of the scale counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// `up` or `down`.
    pub direction: String,
}

/// Every metric, and the registry they are exposed from.
pub struct Metrics {
    registry: Registry,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconcile durations.
    pub duration: Histogram,
    /// Failed reconciles and invalid specs, by reason.
    pub errors: Family<ReasonLabel, Counter>,
    /// Children created, updated (drift or spec change) and pruned.
    pub writes: Family<WriteLabel, Counter>,
    /// 1 while this process holds the leader Lease.
    pub leader: Gauge<i64, AtomicI64>,
    /// Evaluations of autoscaled pools (one per pool per autoscaler tick).
    pub autoscale_evaluations: Counter,
    /// Replica changes made by the autoscaler, by direction.
    pub autoscale_scales: Family<DirectionLabel, Counter>,
    /// Edge pods whose `/api/stats` could not be read.
    pub autoscale_stats_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("fleetcast_operator");
        let reconciles = Counter::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let errors = Family::<ReasonLabel, Counter>::default();
        let writes = Family::<WriteLabel, Counter>::default();
        let leader = Gauge::<i64, AtomicI64>::default();
        let autoscale_evaluations = Counter::default();
        let autoscale_scales = Family::<DirectionLabel, Counter>::default();
        let autoscale_stats_failures = Counter::default();
        registry.register(
            "autoscale_evaluations",
            "Evaluations of viewer/bandwidth-autoscaled edge pools",
            autoscale_evaluations.clone(),
        );
        registry.register(
            "autoscale_scales",
            "Replica changes made by the autoscaler, by direction",
            autoscale_scales.clone(),
        );
        registry.register(
            "autoscale_stats_failures",
            "Edge pods whose /api/stats could not be read",
            autoscale_stats_failures.clone(),
        );
        registry.register(
            "reconciles",
            "MediaCluster reconciles run",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one MediaCluster reconcile took",
            duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles and refused specs, by reason",
            errors.clone(),
        );
        registry.register(
            "object_writes",
            "Child objects created, updated or pruned",
            writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            duration,
            errors,
            writes,
            leader,
            autoscale_evaluations,
            autoscale_scales,
            autoscale_stats_failures,
        }
    }
}

impl Metrics {
    /// Counts one reconcile that took `took`.
    pub fn reconciled(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// Counts one error.
    pub fn error(&self, reason: &str) {
        self.errors
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts one write to a child.
    pub fn write(&self, kind: &str, action: &str) {
        self.writes
            .get_or_create(&WriteLabel {
                kind: kind.to_owned(),
                action: action.to_owned(),
            })
            .inc();
    }

    /// Counts one scale by the autoscaler.
    pub fn scaled(&self, up: bool) {
        self.autoscale_scales
            .get_or_create(&DirectionLabel {
                direction: if up { "up" } else { "down" }.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_exposition_has_every_metric() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(20));
        m.error("apply_deployment");
        m.write("Deployment", "created");
        m.leader.set(1);
        m.scaled(true);
        m.autoscale_evaluations.inc();
        let text = m.encode();
        for line in [
            "fleetcast_operator_reconciles_total 1",
            "fleetcast_operator_reconcile_duration_seconds_count 1",
            "fleetcast_operator_reconcile_errors_total{reason=\"apply_deployment\"} 1",
            "fleetcast_operator_object_writes_total{kind=\"Deployment\",action=\"created\"} 1",
            "fleetcast_operator_leader 1",
            "fleetcast_operator_autoscale_scales_total{direction=\"up\"} 1",
            "fleetcast_operator_autoscale_evaluations_total 1",
            "fleetcast_operator_autoscale_stats_failures_total 0",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
