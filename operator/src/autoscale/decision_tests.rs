//! Table tests of the scaling decision against the HPA's documented
//! behaviour: tolerance, stabilization windows, rate policies, bounds,
//! missing and not-started pods, flapping input.

use super::*;
use PodMetric::{Ignored, Missing, Unready, Value};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// One evaluation: at `t` seconds the Deployment has `current` replicas and
/// the pods report `pods`; the decision must be `want` for `reason`.
struct Step {
    t: u64,
    current: i32,
    pods: Vec<PodMetric>,
    want: i32,
    reason: &'static str,
}

fn step(t: u64, current: i32, pods: Vec<PodMetric>, want: i32, reason: &'static str) -> Step {
    Step {
        t,
        current,
        pods,
        want,
        reason,
    }
}

fn all(n: usize, v: f64) -> Vec<PodMetric> {
    vec![Value(v); n]
}

struct Case {
    what: &'static str,
    behavior: Behavior,
    min: i32,
    max: i32,
    target: f64,
    /// Seed the history with the first step's replicas at t=0 (what the loop does).
    seeded: bool,
    steps: Vec<Step>,
}

fn case(what: &'static str, steps: Vec<Step>) -> Case {
    Case {
        what,
        behavior: Behavior::default(),
        min: 1,
        max: 100,
        target: 10.0,
        seeded: false,
        steps,
    }
}

fn run(case: &Case) {
    let mut history = if case.seeded {
        History::seeded(Duration::ZERO, case.steps[0].current)
    } else {
        History::default()
    };
    for (i, s) in case.steps.iter().enumerate() {
        let d = decide(
            &mut history,
            &Input {
                now: secs(s.t),
                current: s.current,
                min: case.min,
                max: case.max,
                target: case.target,
                pods: &s.pods,
                behavior: &case.behavior,
            },
        );
        assert_eq!(
            (d.desired, d.reason),
            (s.want, s.reason),
            "{}: step {i} (t={}s, current {}): {}",
            case.what,
            s.t,
            s.current,
            d.message
        );
    }
}

fn no_down_window() -> Behavior {
    Behavior {
        down: Rules {
            stabilization: Duration::ZERO,
            ..Rules::default_down()
        },
        ..Behavior::default()
    }
}

#[test]
fn tolerance() {
    for c in [
        case(
            "5% above target is within the 10% tolerance",
            vec![step(0, 4, all(4, 10.5), 4, "WithinTolerance")],
        ),
        case(
            "exactly 10% above is still within",
            vec![step(0, 4, all(4, 11.0), 4, "WithinTolerance")],
        ),
        case(
            "15% above: ceil(4 * 1.15) = 5",
            vec![step(0, 4, all(4, 11.5), 5, "MetricAboveTarget")],
        ),
        case(
            "5% below is within",
            vec![step(0, 4, all(4, 9.5), 4, "WithinTolerance")],
        ),
        case(
            "the docs' example: 1 pod at 200 with target 100 -> 2",
            vec![step(0, 1, all(1, 20.0), 2, "MetricAboveTarget")],
        ),
        Case {
            behavior: Behavior {
                up: Rules {
                    tolerance: 0.5,
                    ..Rules::default_up()
                },
                down: Rules {
                    tolerance: 0.0,
                    stabilization: Duration::ZERO,
                    ..Rules::default_down()
                },
            },
            ..case(
                "tolerance per direction: 40% above is within 50%, 5% below is not within 0%",
                vec![
                    step(0, 4, all(4, 14.0), 4, "WithinTolerance"),
                    step(15, 4, all(4, 7.4), 3, "MetricBelowTarget"),
                ],
            )
        },
    ] {
        run(&c);
    }
}

#[test]
fn scale_down_stabilization_window() {
    run(&Case {
        seeded: true,
        ..case(
            "the highest recommendation of the last 300 s wins",
            vec![
                // Seeded with 10 at t=0: the drop waits for the window.
                step(0, 10, all(10, 5.0), 10, "ScaleDownStabilized"),
                step(100, 10, all(10, 6.0), 10, "ScaleDownStabilized"),
                step(299, 10, all(10, 5.0), 10, "ScaleDownStabilized"),
                // The seed left the window; t=100 asked for 6.
                step(301, 10, all(10, 5.0), 6, "ScaleDownStabilized"),
                // Everything in (101, 401] asked for 5 or less.
                step(401, 6, all(6, 8.0), 5, "MetricBelowTarget"),
            ],
        )
    });
    run(&case(
        "without history (HPA after a restart) the first low reading scales down at once",
        vec![step(0, 10, all(10, 5.0), 5, "MetricBelowTarget")],
    ));
    run(&Case {
        seeded: true,
        ..case(
            "scale-up is not stabilized by default (window 0 s)",
            vec![
                step(0, 4, all(4, 5.0), 4, "ScaleDownStabilized"),
                step(15, 4, all(4, 20.0), 8, "MetricAboveTarget"),
            ],
        )
    });
    run(&Case {
        behavior: Behavior {
            up: Rules {
                stabilization: secs(60),
                ..Rules::default_up()
            },
            ..no_down_window()
        },
        ..case(
            "a scale-up window takes the lowest recent recommendation",
            vec![
                step(0, 4, all(4, 10.0), 4, "WithinTolerance"),
                step(30, 4, all(4, 20.0), 4, "ScaleUpStabilized"),
                step(61, 4, all(4, 20.0), 8, "MetricAboveTarget"),
            ],
        )
    });
}

#[test]
fn rate_policies() {
    run(&case(
        "up: max(+4 pods, +100%) per 15 s",
        vec![
            step(0, 2, all(2, 100.0), 6, "ScaleUpLimit"),
            // 4 pods were added within the period: the period started at 2.
            step(5, 6, all(6, 100.0), 6, "ScaleUpLimit"),
            step(16, 6, all(6, 100.0), 12, "ScaleUpLimit"),
            step(32, 12, all(12, 100.0), 24, "ScaleUpLimit"),
        ],
    ));
    run(&Case {
        behavior: Behavior {
            up: Rules {
                select: Select::Min,
                ..Rules::default_up()
            },
            ..Behavior::default()
        },
        ..case(
            "up with selectPolicy Min: the smaller of +4 and +100%",
            vec![
                step(0, 2, all(2, 100.0), 4, "ScaleUpLimit"),
                step(16, 10, all(10, 100.0), 14, "ScaleUpLimit"),
            ],
        )
    });
    run(&Case {
        behavior: Behavior {
            up: Rules {
                select: Select::Disabled,
                ..Rules::default_up()
            },
            ..Behavior::default()
        },
        ..case(
            "up disabled",
            vec![step(0, 2, all(2, 100.0), 2, "ScaleUpLimit")],
        )
    });
    let one_pod_a_minute = Behavior {
        down: Rules {
            stabilization: Duration::ZERO,
            select: Select::Max,
            policies: vec![Policy {
                kind: PolicyKind::Pods,
                value: 1,
                period: secs(60),
            }],
            tolerance: DEFAULT_TOLERANCE,
        },
        ..Behavior::default()
    };
    run(&Case {
        behavior: one_pod_a_minute,
        ..case(
            "down: 1 pod per 60 s",
            vec![
                step(0, 5, all(5, 1.0), 4, "ScaleDownLimit"),
                step(30, 4, all(4, 1.0), 4, "ScaleDownLimit"),
                step(61, 4, all(4, 1.0), 3, "ScaleDownLimit"),
            ],
        )
    });
    run(&Case {
        behavior: Behavior {
            down: Rules {
                stabilization: Duration::ZERO,
                policies: vec![Policy {
                    kind: PolicyKind::Percent,
                    value: 50,
                    period: secs(15),
                }],
                ..Rules::default_down()
            },
            ..Behavior::default()
        },
        ..case(
            "down: 50% per 15 s rounds the floor down",
            vec![step(0, 5, all(5, 1.0), 2, "ScaleDownLimit")],
        )
    });
    run(&Case {
        behavior: Behavior {
            down: Rules {
                select: Select::Disabled,
                stabilization: Duration::ZERO,
                ..Rules::default_down()
            },
            ..Behavior::default()
        },
        ..case(
            "down disabled",
            vec![step(0, 5, all(5, 0.0), 5, "ScaleDownLimit")],
        )
    });
}

#[test]
fn bounds() {
    let bounded = |what, steps| Case {
        min: 2,
        max: 5,
        behavior: no_down_window(),
        ..case(what, steps)
    };
    for c in [
        bounded(
            "never above maxReplicas",
            vec![step(0, 3, all(3, 30.0), 5, "TooManyReplicas")],
        ),
        bounded(
            "never below minReplicas",
            vec![step(0, 3, all(3, 0.0), 2, "TooFewReplicas")],
        ),
        bounded(
            "replicas above max are brought down first",
            vec![step(0, 7, all(7, 100.0), 5, "AboveMaxReplicas")],
        ),
        bounded(
            "replicas below min are brought up first",
            vec![step(0, 1, all(1, 0.0), 2, "BelowMinReplicas")],
        ),
        bounded(
            "zero replicas set by hand: autoscaling waits",
            vec![step(0, 0, vec![], 0, "ScalingDisabled")],
        ),
    ] {
        run(&c);
    }
}

#[test]
fn missing_and_unready_pods() {
    let c = |what, steps| Case {
        behavior: no_down_window(),
        ..case(what, steps)
    };
    for case in [
        c(
            "no pods: nothing to go on",
            vec![step(0, 3, vec![], 3, "NoPods")],
        ),
        c(
            "no stats at all: no change",
            vec![step(0, 4, vec![Missing; 4], 4, "NoMetrics")],
        ),
        c(
            "only pending pods: no change",
            vec![step(0, 2, vec![Unready; 2], 2, "NoMetrics")],
        ),
        c(
            "scale-down counts missing pods at target: 3, not 1",
            vec![step(
                0,
                4,
                vec![Value(0.0), Missing, Missing, Missing],
                3,
                "MetricBelowTarget",
            )],
        ),
        c(
            "missing pods at target can stop a scale-down entirely",
            vec![step(
                0,
                4,
                vec![Value(8.0), Missing, Missing, Missing],
                4,
                "WithinTolerance",
            )],
        ),
        c(
            "scale-up counts missing pods as idle: ceil(2 * 15/10) = 3",
            vec![step(
                0,
                2,
                vec![Value(30.0), Missing],
                3,
                "MetricAboveTarget",
            )],
        ),
        c(
            "guesses that flip the direction change nothing",
            vec![step(
                0,
                4,
                vec![Value(12.0), Missing, Missing, Missing],
                4,
                "WithinTolerance",
            )],
        ),
        c(
            "pending pods count as idle on a scale-up",
            vec![step(
                0,
                4,
                vec![Value(20.0), Value(20.0), Unready, Unready],
                4,
                "WithinTolerance",
            )],
        ),
        c(
            "pending pods are left out of a scale-down",
            vec![step(
                0,
                3,
                vec![Value(0.0), Value(0.0), Unready],
                1,
                "TooFewReplicas",
            )],
        ),
        c(
            "terminating pods are ignored",
            vec![step(
                0,
                2,
                vec![Value(40.0), Ignored],
                4,
                "MetricAboveTarget",
            )],
        ),
    ] {
        run(&case);
    }
}

#[test]
fn flapping_input_does_not_flap_replicas() {
    // The audience alternates every 15 s between 240 and 80 viewers in total
    // (target 10 per pod): the pool grows at once with the peaks and does
    // not shrink in the troughs while a peak is within the 300 s window.
    let behavior = Behavior::default();
    let mut history = History::default();
    let mut current = 4;
    let mut evaluate = |t: u64, total: f64, current: i32| {
        let pods = all(
            usize::try_from(current).unwrap(),
            total / f64::from(current),
        );
        decide(
            &mut history,
            &Input {
                now: secs(t),
                current,
                min: 1,
                max: 100,
                target: 10.0,
                pods: &pods,
                behavior: &behavior,
            },
        )
    };
    let mut seen = Vec::new();
    for i in 0..40u64 {
        let total = if i % 2 == 0 { 240.0 } else { 80.0 };
        current = evaluate(i * 15, total, current).desired;
        seen.push(current);
    }
    // As fast as the policies allow (+100% or +4 per 15 s), then steady.
    assert_eq!(&seen[..5], &[8, 8, 16, 16, 24], "{seen:?}");
    assert!(seen[5..].iter().all(|&r| r == 24), "{seen:?}");

    // The last peak was at t=570; troughs only from then on. The first
    // evaluation whose window no longer holds a peak is t=870.
    let mut t = 600;
    while t < 1200 {
        let d = evaluate(t, 80.0, current);
        if t < 870 {
            assert_eq!(d.desired, 24, "t={t}: {}", d.message);
            assert_eq!(d.reason, "ScaleDownStabilized");
        } else if t == 870 {
            assert_eq!(d.desired, 8, "t={t}: {}", d.message);
        }
        current = d.desired;
        t += 15;
    }
}
