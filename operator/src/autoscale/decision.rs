//! The scaling decision: the HorizontalPodAutoscaler's algorithm for a
//! per-pod average metric (`AverageValue` of a Pods metric), pure and fed
//! times, so every rule of it is unit-tested.
//!
//! Follows the Kubernetes HPA documentation and controller
//! (`replica_calculator.go` `calcPlainMetricReplicas`, `horizontal.go`
//! `normalizeDesiredReplicasWithBehaviors`):
//!
//! 1. `desired = ceil(pods_with_metrics * average / target)`, no change when
//!    `average / target` is within the tolerance (10% by default).
//! 2. Pods whose stats could not be read count as `target` when the pool would
//!    shrink and as 0 when it would grow; Pending pods count as 0 on a scale-up
//!    and are left out otherwise; terminating or failed pods are ignored. A
//!    result that would flip the direction of scaling changes nothing.
//! 3. Stabilization: the recommendation is kept between the lowest
//!    recommendation within the scale-up window and the highest within the
//!    scale-down window (0 s and 300 s by default).
//! 4. Rate policies (by default up: +100% or +4 pods per 15 s, whichever is
//!    more; down: -100% per 15 s), `selectPolicy` Max, Min or Disabled, then
//!    the `minReplicas`/`maxReplicas` bounds.

use std::fmt::Write as _;
use std::time::Duration;

/// HPA's cluster-wide default tolerance.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// HPA's default scale-down stabilization window.
pub const DEFAULT_SCALE_DOWN_WINDOW: Duration = Duration::from_mins(5);
/// Period of HPA's default policies.
pub const DEFAULT_POLICY_PERIOD: Duration = Duration::from_secs(15);

/// How to combine several policies of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the biggest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// A rate policy: change by at most `value` pods or percent per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Pods or Percent.
    pub kind: PolicyKind,
    /// Pods, or percent of the replicas at the start of the period.
    pub value: i32,
    /// The sliding period.
    pub period: Duration,
}

/// What a policy's value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Absolute pods.
    Pods,
    /// Percent of the replicas at the start of the period.
    Percent,
}

/// Rules of one direction (HPA's `HPAScalingRules`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Past recommendations considered.
    pub stabilization: Duration,
    /// How policies combine.
    pub select: Select,
    /// Rate policies.
    pub policies: Vec<Policy>,
    /// No change while `|average / target - 1|` is within this, on this side.
    pub tolerance: f64,
}

impl Rules {
    /// HPA's defaults for scaling up.
    pub fn default_up() -> Self {
        Self {
            stabilization: Duration::ZERO,
            select: Select::Max,
            policies: vec![
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period: DEFAULT_POLICY_PERIOD,
                },
                Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period: DEFAULT_POLICY_PERIOD,
                },
            ],
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// HPA's defaults for scaling down.
    pub fn default_down() -> Self {
        Self {
            stabilization: DEFAULT_SCALE_DOWN_WINDOW,
            select: Select::Max,
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period: DEFAULT_POLICY_PERIOD,
            }],
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    fn longest_period(&self) -> Duration {
        self.policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or_default()
    }
}

/// Both directions (HPA's `HorizontalPodAutoscalerBehavior`).
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// Scaling up.
    pub up: Rules,
    /// Scaling down.
    pub down: Rules,
}

impl Default for Behavior {
    fn default() -> Self {
        Self {
            up: Rules::default_up(),
            down: Rules::default_down(),
        }
    }
}

/// One pod of the pool as the calculation sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PodMetric {
    /// Running, with a reading of the metric.
    Value(f64),
    /// Running, but its stats could not be read.
    Missing,
    /// Pending (not started yet).
    Unready,
    /// Terminating or failed: not part of the calculation.
    Ignored,
}

/// What the metric asks for, before stabilization and policies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    /// Replicas the metric asks for.
    pub replicas: i32,
    /// Average over the pods that reported (what status shows).
    pub average: f64,
    /// Pods that reported.
    pub measured: usize,
    /// Running pods without a reading.
    pub missing: usize,
    /// Pending pods.
    pub unready: usize,
}

/// Why no proposal could be made (HPA: `ScalingActive=False`); nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// The pool has no pods.
    #[error("the pool has no pods")]
    NoPods,
    /// No pod reported (all missing or not started).
    #[error("no pod of the pool reported its stats")]
    NoMetrics,
}

#[allow(clippy::cast_precision_loss)] // Pod counts are far below 2^52.
fn average(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

#[allow(clippy::cast_possible_truncation)] // Clamped into i32 first.
fn ceil_replicas(x: f64) -> i32 {
    x.ceil().clamp(0.0, f64::from(i32::MAX)) as i32
}

fn within(ratio: f64, up: &Rules, down: &Rules) -> bool {
    (1.0 - down.tolerance) <= ratio && ratio <= (1.0 + up.tolerance)
}

/// HPA's `calcPlainMetricReplicas`: the replicas a per-pod average metric asks for.
pub fn proposal(
    current: i32,
    pods: &[PodMetric],
    target: f64,
    behavior: &Behavior,
) -> Result<Proposal, MetricError> {
    if pods.is_empty() {
        return Err(MetricError::NoPods);
    }
    let mut values: Vec<f64> = pods
        .iter()
        .filter_map(|p| match p {
            PodMetric::Value(v) => Some(*v),
            _ => None,
        })
        .collect();
    let missing = pods.iter().filter(|p| **p == PodMetric::Missing).count();
    let unready = pods.iter().filter(|p| **p == PodMetric::Unready).count();
    if values.is_empty() {
        return Err(MetricError::NoMetrics);
    }
    let measured = values.len();
    let avg = average(&values);
    let ratio = avg / target;
    let result = |replicas| Proposal {
        replicas,
        average: avg,
        measured,
        missing,
        unready,
    };
    let scale_up_with_unready = unready > 0 && ratio > 1.0;
    if !scale_up_with_unready && missing == 0 {
        if within(ratio, &behavior.up, &behavior.down) {
            return Ok(result(current));
        }
        #[allow(clippy::cast_precision_loss)]
        return Ok(result(ceil_replicas(ratio * measured as f64)));
    }
    // Missing pods: as at target on a way down, as idle on a way up.
    let fill = if ratio < 1.0 { target } else { 0.0 };
    values.extend(std::iter::repeat_n(fill, missing));
    if scale_up_with_unready {
        values.extend(std::iter::repeat_n(0.0, unready));
    }
    let new_ratio = average(&values) / target;
    if within(new_ratio, &behavior.up, &behavior.down)
        || (ratio > 1.0 && new_ratio < 1.0)
        || (ratio < 1.0 && new_ratio > 1.0)
    {
        // Too small a change, or the guesses flip the direction.
        return Ok(result(current));
    }
    #[allow(clippy::cast_precision_loss)]
    let replicas = ceil_replicas(new_ratio * values.len() as f64);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(result(current));
    }
    Ok(result(replicas))
}

/// What the decision remembers between evaluations of one pool: past
/// recommendations (stabilization) and past scale events (rate policies).
/// Times are offsets from any fixed instant (the loop's start).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    recommendations: Vec<(Duration, i32)>,
    up_events: Vec<(Duration, i32)>,
    down_events: Vec<(Duration, i32)>,
}

impl History {
    /// A history holding one recommendation: `replicas` at `now`. The loop
    /// seeds a pool it sees for the first time with its current replicas, so
    /// that an operator restart or leader change does not scale down before a
    /// whole window of evidence (HPA starts empty here).
    pub fn seeded(now: Duration, replicas: i32) -> Self {
        Self {
            recommendations: vec![(now, replicas)],
            ..Self::default()
        }
    }

    fn changed_within(events: &[(Duration, i32)], period: Duration, now: Duration) -> i32 {
        events
            .iter()
            .filter(|(t, _)| *t + period > now)
            .map(|(_, n)| *n)
            .sum()
    }
}

/// What one evaluation of a pool looks at.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Time of this evaluation (same origin as the History's).
    pub now: Duration,
    /// The Deployment's replicas now.
    pub current: i32,
    /// `autoscaling.minReplicas`.
    pub min: i32,
    /// `autoscaling.maxReplicas`.
    pub max: i32,
    /// Target average per pod.
    pub target: f64,
    /// Every pod of the pool.
    pub pods: &'a [PodMetric],
    /// Windows, policies, tolerance.
    pub behavior: &'a Behavior,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Replicas the pool should have now.
    pub desired: i32,
    /// What the metric alone asked for, when it could be computed.
    pub proposal: Option<Proposal>,
    /// CamelCase: why `desired` is what it is.
    pub reason: &'static str,
    /// For people.
    pub message: String,
}

impl Decision {
    /// True when the replicas change.
    pub fn rescale(&self, current: i32) -> bool {
        self.desired != current
    }
}

/// One evaluation: HPA's `reconcileAutoscaler` for one metric. Records the
/// recommendation and, when the replicas change, the scale event.
pub fn decide(history: &mut History, input: &Input<'_>) -> Decision {
    let Input {
        current, min, max, ..
    } = *input;
    let fixed = |desired, reason, message: String| Decision {
        desired,
        proposal: None,
        reason,
        message,
    };
    let decision = if current == 0 {
        fixed(
            0,
            "ScalingDisabled",
            "the Deployment was scaled to zero by hand: autoscaling waits".to_owned(),
        )
    } else if current > max {
        fixed(
            max,
            "AboveMaxReplicas",
            format!("{current} replicas is above maxReplicas {max}"),
        )
    } else if current < min {
        fixed(
            min,
            "BelowMinReplicas",
            format!("{current} replicas is below minReplicas {min}"),
        )
    } else {
        match proposal(current, input.pods, input.target, input.behavior) {
            Err(e) => fixed(
                current,
                reason_of(e),
                format!("{e}: keeping {current} replicas"),
            ),
            Ok(p) => normalize(history, input, p),
        }
    };
    if decision.desired != current {
        record_scale_event(history, input, decision.desired);
    }
    decision
}

fn reason_of(e: MetricError) -> &'static str {
    match e {
        MetricError::NoPods => "NoPods",
        MetricError::NoMetrics => "NoMetrics",
    }
}

/// HPA's `normalizeDesiredReplicasWithBehaviors`: stabilize, then rate-limit and bound.
fn normalize(history: &mut History, input: &Input<'_>, p: Proposal) -> Decision {
    let Input {
        now,
        current,
        behavior,
        ..
    } = *input;
    let (up, down) = (&behavior.up, &behavior.down);

    // Stabilization: between the lowest recent recommendation (up window)
    // and the highest (down window).
    let mut up_rec = p.replicas;
    let mut down_rec = p.replicas;
    for &(t, r) in &history.recommendations {
        if t + up.stabilization > now {
            up_rec = up_rec.min(r);
        }
        if t + down.stabilization > now {
            down_rec = down_rec.max(r);
        }
    }
    let stabilized = current.max(up_rec).min(down_rec);
    history
        .recommendations
        .retain(|&(t, _)| t + up.stabilization > now || t + down.stabilization > now);
    history.recommendations.push((now, p.replicas));

    let (desired, limit) = rate_limit(history, input, stabilized);

    let measured = format!(
        "average {:.2} per pod over {} pod(s), target {}",
        p.average, p.measured, input.target
    );
    let (reason, why): (&'static str, String) = if let Some((reason, message)) = limit {
        (reason, message.to_owned())
    } else if stabilized != p.replicas {
        if p.replicas > current {
            (
                "ScaleUpStabilized",
                "recent recommendations were lower: applying the lowest recent one".to_owned(),
            )
        } else {
            (
                "ScaleDownStabilized",
                format!(
                    "recent recommendations were higher: applying the highest of the last {}s",
                    down.stabilization.as_secs()
                ),
            )
        }
    } else if desired > current {
        ("MetricAboveTarget", "the metric is above target".to_owned())
    } else if desired < current {
        ("MetricBelowTarget", "the metric is below target".to_owned())
    } else {
        ("WithinTolerance", "no change needed".to_owned())
    };
    let mut extra = String::new();
    if p.missing > 0 {
        let _ = write!(extra, ", {} pod(s) without stats", p.missing);
    }
    if p.unready > 0 {
        let _ = write!(extra, ", {} pod(s) not started", p.unready);
    }
    Decision {
        desired,
        proposal: Some(p),
        reason,
        message: format!("{measured}{extra}: metric asks for {}; {why}", p.replicas),
    }
}

/// HPA's `convertDesiredReplicasWithBehaviorRate`: applies the rate policies and
/// the bounds; returns the replicas and, when something limited them, why.
fn rate_limit(
    history: &History,
    input: &Input<'_>,
    desired: i32,
) -> (i32, Option<(&'static str, &'static str)>) {
    let Input {
        now,
        current,
        min,
        max,
        behavior,
        ..
    } = *input;
    if desired > current {
        let limit = scale_up_limit(history, &behavior.up, current, now).max(current);
        let (allowed, why) = if max > limit {
            (
                limit,
                (
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the scale-up policies allow",
                ),
            )
        } else {
            (
                max,
                (
                    "TooManyReplicas",
                    "the desired replica count is more than maxReplicas",
                ),
            )
        };
        if desired > allowed {
            return (allowed, Some(why));
        }
    } else if desired < current {
        let limit = scale_down_limit(history, &behavior.down, current, now).min(current);
        let (allowed, why) = if min < limit {
            (
                limit,
                (
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the scale-down policies allow",
                ),
            )
        } else {
            (
                min,
                (
                    "TooFewReplicas",
                    "the desired replica count is less than minReplicas",
                ),
            )
        };
        if desired < allowed {
            return (allowed, Some(why));
        }
    }
    (desired, None)
}

fn scale_up_limit(history: &History, rules: &Rules, current: i32, now: Duration) -> i32 {
    let pick: fn(i32, i32) -> i32 = match rules.select {
        Select::Disabled => return current,
        Select::Min => std::cmp::min,
        Select::Max => std::cmp::max,
    };
    let mut result = if rules.select == Select::Min {
        i32::MAX
    } else {
        i32::MIN
    };
    for policy in &rules.policies {
        let added = History::changed_within(&history.up_events, policy.period, now);
        let deleted = History::changed_within(&history.down_events, policy.period, now);
        let start = current - added + deleted;
        let proposed = match policy.kind {
            PolicyKind::Pods => start.saturating_add(policy.value),
            // Rounded up, or a small pool could never grow.
            PolicyKind::Percent => {
                ceil_replicas(f64::from(start) * (1.0 + f64::from(policy.value) / 100.0))
            }
        };
        result = pick(result, proposed);
    }
    if rules.policies.is_empty() {
        return current;
    }
    result
}

fn scale_down_limit(history: &History, rules: &Rules, current: i32, now: Duration) -> i32 {
    let pick: fn(i32, i32) -> i32 = match rules.select {
        Select::Disabled => return current,
        // For scaling down, the smallest change is the largest result.
        Select::Min => std::cmp::max,
        Select::Max => std::cmp::min,
    };
    let mut result = if rules.select == Select::Min {
        i32::MIN
    } else {
        i32::MAX
    };
    for policy in &rules.policies {
        let added = History::changed_within(&history.up_events, policy.period, now);
        let deleted = History::changed_within(&history.down_events, policy.period, now);
        let start = current - added + deleted;
        let proposed = match policy.kind {
            PolicyKind::Pods => start - policy.value,
            #[allow(clippy::cast_possible_truncation)] // HPA truncates too.
            PolicyKind::Percent => {
                (f64::from(start) * (1.0 - f64::from(policy.value) / 100.0)).max(0.0) as i32
            }
        };
        result = pick(result, proposed);
    }
    if rules.policies.is_empty() {
        return current;
    }
    result
}

fn record_scale_event(history: &mut History, input: &Input<'_>, desired: i32) {
    let keep = input
        .behavior
        .up
        .longest_period()
        .max(input.behavior.down.longest_period());
    let now = input.now;
    for events in [&mut history.up_events, &mut history.down_events] {
        events.retain(|&(t, _)| t + keep > now);
    }
    if desired > input.current {
        history.up_events.push((now, desired - input.current));
    } else {
        history.down_events.push((now, input.current - desired));
    }
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
