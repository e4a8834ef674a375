//! The part of a MediaCluster's status the autoscaler writes, under its own
//! field manager: total viewers, and per pool viewers, egress and the scaling
//! state. Pure: built from what a tick observed, compared with what the object
//! has so unchanged status is not written again.

use serde::{Deserialize, Serialize};

use crate::crd::v1alpha1::{MediaClusterStatus, PoolAutoscalingStatus};

/// One entry of `status.edges` as the autoscaler writes it (the reconciler
/// writes the replica counts of the same entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolPart {
    /// Pool name (the list's key).
    pub name: String,
    /// Viewers on the pool's pods that reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewers: Option<i64>,
    /// Egress of those pods, bits per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_bits_per_second: Option<i64>,
    /// Scaling state, for viewer and bandwidth autoscaled pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<PoolAutoscalingStatus>,
}

/// The autoscaler's part of the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Viewers over all pools, when any pod reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewers: Option<i64>,
    /// Per pool, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<PoolPart>,
}

impl Part {
    /// From the pools' parts (entries with nothing to say are left out);
    /// total viewers when any pool has a count.
    pub fn new(mut edges: Vec<PoolPart>) -> Self {
        edges.retain(PoolPart::has_any);
        let counted: Vec<i64> = edges.iter().filter_map(|p| p.viewers).collect();
        Self {
            viewers: (!counted.is_empty()).then(|| counted.iter().sum()),
            edges,
        }
    }

    /// What the object's status holds of this part (entries without any of
    /// the autoscaler's fields are left out, as the autoscaler would not write them).
    pub fn of(status: Option<&MediaClusterStatus>) -> Self {
        let Some(s) = status else {
            return Self::default();
        };
        Self {
            viewers: s.viewers,
            edges: s
                .edges
                .iter()
                .map(|p| PoolPart {
                    name: p.name.clone(),
                    viewers: p.viewers,
                    egress_bits_per_second: p.egress_bits_per_second,
                    autoscaling: p.autoscaling.clone(),
                })
                .filter(PoolPart::has_any)
                .collect(),
        }
    }

    /// Whether writing `self` would change what `status` holds.
    pub fn differs_from(&self, status: Option<&MediaClusterStatus>) -> bool {
        *self != Self::of(status)
    }
}

impl PoolPart {
    fn has_any(&self) -> bool {
        self.viewers.is_some()
            || self.egress_bits_per_second.is_some()
            || self.autoscaling.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::v1alpha1::{ComponentStatus, PoolStatus};

    #[test]
    fn only_the_autoscalers_fields_are_compared() {
        let pool = |name: &str, viewers: Option<i64>| PoolPart {
            name: name.into(),
            viewers,
            egress_bits_per_second: viewers.map(|v| v * 1000),
            autoscaling: None,
        };
        let part = Part::new(vec![pool("london", Some(3)), pool("tokyo", None)]);
        assert_eq!(part.viewers, Some(3));
        let mut status = MediaClusterStatus {
            edges: vec![
                PoolStatus {
                    name: "london".into(),
                    replicas: ComponentStatus {
                        desired_replicas: 2,
                        ready_replicas: 1,
                        updated_replicas: 2,
                    },
                    ..PoolStatus::default()
                },
                PoolStatus {
                    name: "tokyo".into(),
                    ..PoolStatus::default()
                },
            ],
            ..MediaClusterStatus::default()
        };
        assert!(part.differs_from(Some(&status)));
        status.viewers = Some(3);
        status.edges[0].viewers = Some(3);
        status.edges[0].egress_bits_per_second = Some(3000);
        // The reconciler's replica counts do not matter.
        assert!(!part.differs_from(Some(&status)));
        let json = serde_json::to_value(&part).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"viewers": 3, "edges": [
                {"name": "london", "viewers": 3, "egressBitsPerSecond": 3000}
            ]})
        );
    }
}
