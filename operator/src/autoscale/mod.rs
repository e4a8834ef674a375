//! Viewer and bandwidth autoscaling of edge pools: the operator's own loop
//! over the edges' stats, with the HorizontalPodAutoscaler's algorithm.
//!
//! `decision` is the pure algorithm, `behavior` turns a pool's
//! `autoscaling.behavior` into its rules, `pods` says how each edge pod counts,
//! `stats` reads an edge's `/api/stats`, `status` is the autoscaler's part of
//! the MediaCluster status, and `run` is the loop that ties them together.

pub mod behavior;
pub mod decision;
pub mod pods;
pub mod run;
pub mod stats;
pub mod status;
