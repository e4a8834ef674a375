//! Viewer and bandwidth autoscaling of edge pools: the operator's own loop
//! over the edges' stats, with the HorizontalPodAutoscaler's algorithm.
//!
//! `decision` is the pure algorithm, `behavior` turns a pool's
//! `autoscaling.behavior` into its rules.

pub mod behavior;
pub mod decision;
