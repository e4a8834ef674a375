//! A pool's `autoscaling.behavior` (the HPA autoscaling/v2 type) turned into
//! the decision's rules, with HPA's defaults for what is unset and the HPA
//! API's validation for what is set.

use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

use super::decision::{Behavior, DEFAULT_TOLERANCE, Policy, PolicyKind, Rules, Select};

/// Longest stabilization window the HPA API accepts.
const MAX_WINDOW_SECS: i32 = 3600;
/// Longest policy period the HPA API accepts.
const MAX_PERIOD_SECS: i32 = 1800;

/// A behavior the HPA API would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("autoscaling.behavior.{direction}: {reason}")]
pub struct BehaviorError {
    /// `scaleUp` or `scaleDown`.
    pub direction: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// The rules for `spec`, HPA's defaults where unset.
pub fn from_spec(
    spec: Option<&HorizontalPodAutoscalerBehavior>,
) -> Result<Behavior, BehaviorError> {
    let spec = spec.cloned().unwrap_or_default();
    Ok(Behavior {
        up: rules(spec.scale_up.as_ref(), Rules::default_up(), "scaleUp")?,
        down: rules(spec.scale_down.as_ref(), Rules::default_down(), "scaleDown")?,
    })
}

fn rules(
    spec: Option<&HPAScalingRules>,
    default: Rules,
    direction: &'static str,
) -> Result<Rules, BehaviorError> {
    let Some(spec) = spec else {
        return Ok(default);
    };
    let fail = |reason: String| BehaviorError { direction, reason };
    let stabilization = match spec.stabilization_window_seconds {
        None => default.stabilization,
        Some(s) if (0..=MAX_WINDOW_SECS).contains(&s) => secs(s),
        Some(s) => {
            return Err(fail(format!(
                "stabilizationWindowSeconds {s} is not within 0..{MAX_WINDOW_SECS}"
            )));
        }
    };
    let select = match spec.select_policy.as_deref() {
        None | Some("Max") => Select::Max,
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        Some(other) => {
            return Err(fail(format!(
                "selectPolicy {other:?} is not one of Max, Min, Disabled"
            )));
        }
    };
    let policies = match spec.policies.as_deref() {
        None | Some([]) => default.policies,
        Some(list) => list
            .iter()
            .map(|p| {
                let kind = match p.type_.as_str() {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    other => {
                        return Err(fail(format!(
                            "policy type {other:?} is not Pods or Percent"
                        )));
                    }
                };
                if p.value <= 0 {
                    return Err(fail(format!(
                        "policy value {} must be greater than 0",
                        p.value
                    )));
                }
                if !(1..=MAX_PERIOD_SECS).contains(&p.period_seconds) {
                    return Err(fail(format!(
                        "policy periodSeconds {} is not within 1..{MAX_PERIOD_SECS}",
                        p.period_seconds
                    )));
                }
                Ok(Policy {
                    kind,
                    value: p.value,
                    period: secs(p.period_seconds),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let tolerance = match &spec.tolerance {
        None => DEFAULT_TOLERANCE,
        Some(q) => parse_tolerance(&q.0)
            .ok_or_else(|| fail(format!("tolerance {:?} is not a quantity >= 0", q.0)))?,
    };
    Ok(Rules {
        stabilization,
        select,
        policies,
        tolerance,
    })
}

fn secs(s: i32) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

/// A tolerance quantity: `0.05`, `50m`, `1`.
fn parse_tolerance(q: &str) -> Option<f64> {
    let q = q.trim();
    let value = match q.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok()? / 1000.0,
        None => q.parse::<f64>().ok()?,
    };
    (value.is_finite() && value >= 0.0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    #[test]
    fn unset_is_hpa_defaults() {
        assert_eq!(from_spec(None).unwrap(), Behavior::default());
        let empty = HorizontalPodAutoscalerBehavior {
            scale_down: Some(HPAScalingRules::default()),
            scale_up: None,
        };
        let b = from_spec(Some(&empty)).unwrap();
        assert_eq!(b.down.stabilization, Duration::from_mins(5));
        assert_eq!(b, Behavior::default());
    }

    #[test]
    fn set_fields_win_and_bad_ones_are_refused() {
        let spec = HorizontalPodAutoscalerBehavior {
            scale_down: Some(HPAScalingRules {
                stabilization_window_seconds: Some(5),
                select_policy: Some("Min".into()),
                policies: Some(vec![HPAScalingPolicy {
                    type_: "Pods".into(),
                    value: 1,
                    period_seconds: 60,
                }]),
                tolerance: Some(Quantity("50m".into())),
            }),
            scale_up: None,
        };
        let b = from_spec(Some(&spec)).unwrap();
        assert_eq!(b.down.stabilization, Duration::from_secs(5));
        assert_eq!(b.down.select, Select::Min);
        assert_eq!(b.down.policies[0].kind, PolicyKind::Pods);
        assert!((b.down.tolerance - 0.05).abs() < 1e-9);
        assert_eq!(b.up, Rules::default_up());

        for (rules, wanted) in [
            (
                HPAScalingRules {
                    select_policy: Some("Fastest".into()),
                    ..HPAScalingRules::default()
                },
                "selectPolicy",
            ),
            (
                HPAScalingRules {
                    stabilization_window_seconds: Some(4000),
                    ..HPAScalingRules::default()
                },
                "stabilizationWindowSeconds",
            ),
            (
                HPAScalingRules {
                    policies: Some(vec![HPAScalingPolicy {
                        type_: "Pods".into(),
                        value: 0,
                        period_seconds: 15,
                    }]),
                    ..HPAScalingRules::default()
                },
                "value",
            ),
            (
                HPAScalingRules {
                    tolerance: Some(Quantity("-1".into())),
                    ..HPAScalingRules::default()
                },
                "tolerance",
            ),
        ] {
            let spec = HorizontalPodAutoscalerBehavior {
                scale_up: Some(rules),
                scale_down: None,
            };
            let err = from_spec(Some(&spec)).unwrap_err();
            assert!(err.to_string().contains(wanted), "{err}");
            assert!(err.to_string().starts_with("autoscaling.behavior.scaleUp"));
        }
    }
}
