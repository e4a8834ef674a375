//! The upstream graph of edge pools: each pool pulls from the origins or from
//! another pool. The CRD's CEL rules refuse unknown upstreams and a pool that
//! is its own upstream; longer cycles (a -> b -> a) only show here, and the
//! operator then reports them and changes nothing.

use std::collections::BTreeMap;

use crate::crd::v1alpha1::{EdgePool, ORIGIN_UPSTREAM};

/// Why a set of pools cannot be wired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// Two pools share a name.
    #[error("edge pool name {0:?} is used twice")]
    DuplicatePool(String),
    /// A pool names an upstream that is neither the origins nor a pool.
    #[error("edge pool {pool:?} pulls from {upstream:?}, which is neither \"origin\" nor a pool")]
    UnknownUpstream {
        /// The pool.
        pool: String,
        /// What it names.
        upstream: String,
    },
    /// Pools pull from each other in a ring; none reaches the origins.
    #[error("edge pools pull from each other in a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

impl TopologyError {
    /// A short CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::DuplicatePool(_) => "DuplicatePool",
            Self::UnknownUpstream { .. } => "UnknownUpstream",
            Self::Cycle(_) => "UpstreamCycle",
        }
    }
}

/// Checks that every pool reaches the origins; returns each pool's depth
/// (1 = pulls from the origins, 2 = from a pool that does, ...).
pub fn check(pools: &[EdgePool]) -> Result<BTreeMap<String, usize>, TopologyError> {
    let mut upstream_of: BTreeMap<&str, &str> = BTreeMap::new();
    for pool in pools {
        if upstream_of
            .insert(pool.name.as_str(), pool.upstream.as_str())
            .is_some()
        {
            return Err(TopologyError::DuplicatePool(pool.name.clone()));
        }
    }
    let mut depths = BTreeMap::new();
    for pool in pools {
        // Walk up at most pools.len() steps: a longer walk must have looped.
        let mut path = vec![pool.name.as_str()];
        let mut current = pool.name.as_str();
        while let Some(&up) = upstream_of.get(current) {
            if up == ORIGIN_UPSTREAM {
                break;
            }
            if !upstream_of.contains_key(up) {
                return Err(TopologyError::UnknownUpstream {
                    pool: current.to_owned(),
                    upstream: up.to_owned(),
                });
            }
            if let Some(start) = path.iter().position(|p| *p == up) {
                let mut ring: Vec<String> = path[start..].iter().map(|p| (*p).to_owned()).collect();
                ring.push(up.to_owned());
                return Err(TopologyError::Cycle(canonical_ring(ring)));
            }
            path.push(up);
            current = up;
        }
        depths.insert(pool.name.clone(), path.len());
    }
    Ok(depths)
}

/// Rotates a ring (first == last) to start at its smallest name, so the same
/// cycle is always reported the same way whichever pool found it.
fn canonical_ring(mut ring: Vec<String>) -> Vec<String> {
    ring.pop();
    if let Some(min) = ring
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.cmp(b.1))
        .map(|(i, _)| i)
    {
        ring.rotate_left(min);
    }
    if let Some(first) = ring.first().cloned() {
        ring.push(first);
    }
    ring
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools(spec: &[(&str, &str)]) -> Vec<EdgePool> {
        spec.iter()
            .map(|(name, up)| EdgePool {
                upstream: (*up).to_owned(),
                ..EdgePool::named(name)
            })
            .collect()
    }

    type Case = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        Result<BTreeMap<String, usize>, TopologyError>,
    );

    #[test]
    fn topologies() {
        let cycle = |names: &[&str]| {
            Err(TopologyError::Cycle(
                names.iter().map(|s| (*s).to_owned()).collect(),
            ))
        };
        let depths =
            |d: &[(&str, usize)]| Ok(d.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect());
        let table: Vec<Case> = vec![
            ("no pools", vec![], Ok(BTreeMap::new())),
            (
                "two regional pools",
                vec![("london", "origin"), ("tokyo", "origin")],
                depths(&[("london", 1), ("tokyo", 1)]),
            ),
            (
                "tiered",
                vec![("osaka", "tokyo"), ("tokyo", "origin"), ("kyoto", "osaka")],
                depths(&[("tokyo", 1), ("osaka", 2), ("kyoto", 3)]),
            ),
            ("self loop", vec![("a", "a")], cycle(&["a", "a"])),
            (
                "two-cycle",
                vec![("b", "a"), ("a", "b")],
                cycle(&["a", "b", "a"]),
            ),
            (
                "three-cycle behind a good pool",
                vec![
                    ("ok", "origin"),
                    ("z", "x"),
                    ("x", "y"),
                    ("y", "z"),
                    ("tail", "z"),
                ],
                cycle(&["x", "y", "z", "x"]),
            ),
            (
                "unknown upstream",
                vec![("a", "nowhere")],
                Err(TopologyError::UnknownUpstream {
                    pool: "a".into(),
                    upstream: "nowhere".into(),
                }),
            ),
            (
                "duplicate",
                vec![("a", "origin"), ("a", "origin")],
                Err(TopologyError::DuplicatePool("a".into())),
            ),
        ];
        for (what, spec, want) in table {
            assert_eq!(check(&pools(&spec)), want, "{what}");
        }
    }

    #[test]
    fn cycle_message_names_the_ring() {
        let err = check(&pools(&[("a", "b"), ("b", "a")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "edge pools pull from each other in a cycle: a -> b -> a"
        );
        assert_eq!(err.reason(), "UpstreamCycle");
    }
}
