//! Fleetcast operator: reconciles `MediaCluster` resources into origin and
//! edge workloads.

// Kubernetes kinds (ConfigMap, MediaCluster) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

pub mod build;
pub mod crd;

/// Errors of the operator library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(String),
}

/// Result alias for the operator library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
