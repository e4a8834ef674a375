//! Fleetcast operator: reconciles `MediaCluster` resources into origin and
//! edge workloads.
//!
//! `crd` is the API, `build` the pure desired state, `reconcile` applies it and
//! reports status, `leader` keeps a second replica idle, `metrics` and `http`
//! serve what Prometheus and the kubelet ask for; `probe` is the one HTTP GET
//! of `fleetcast-operator probe` (checks from the shell-less image).

// Kubernetes kinds (ConfigMap, MediaCluster) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

pub mod autoscale;
pub mod build;
pub mod crd;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod probe;
pub mod reconcile;

use build::Kind;

/// Errors of the operator library; each names what was being done and to which object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Server-side apply of a child failed.
    #[error("applying {kind} {namespace}/{name}: {source}")]
    Apply {
        /// Kind of the child.
        kind: Kind,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        source: kube::Error,
    },
    /// Deleting a child of a removed pool failed.
    #[error("pruning {kind} {namespace}/{name}: {source}")]
    Prune {
        /// Kind of the child.
        kind: Kind,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        source: kube::Error,
    },
    /// Writing the MediaCluster's status failed.
    #[error("updating status of MediaCluster {namespace}/{name}: {source}")]
    Status {
        /// Namespace of the MediaCluster.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        source: kube::Error,
    },
    /// The MediaCluster has no namespace (only possible with a malformed object).
    #[error("MediaCluster {0} has no namespace")]
    MissingNamespace(String),
    /// Reading, creating or renewing the leader Lease failed.
    #[error("leader lease {namespace}/{name}: {source}")]
    Lease {
        /// Namespace of the Lease.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        source: kube::Error,
    },
}

impl Error {
    /// A bounded label for the errors-by-reason metric.
    pub fn metric_label(&self) -> String {
        match self {
            Error::Apply { kind, .. } => format!("apply_{}", kind.as_str().to_ascii_lowercase()),
            Error::Prune { kind, .. } => format!("prune_{}", kind.as_str().to_ascii_lowercase()),
            Error::Status { .. } => "status".to_owned(),
            Error::MissingNamespace(_) => "missing_namespace".to_owned(),
            Error::Lease { .. } => "lease".to_owned(),
        }
    }

    /// A CamelCase reason for Events and conditions.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Apply { .. } => "ApplyFailed",
            Error::Prune { .. } => "PruneFailed",
            Error::Status { .. } => "StatusUpdateFailed",
            Error::MissingNamespace(_) => "MissingNamespace",
            Error::Lease { .. } => "LeaseFailed",
        }
    }
}

/// Result alias for the operator library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_child_and_have_bounded_labels() {
        let err = Error::Apply {
            kind: Kind::Deployment,
            namespace: "video".into(),
            name: "live-edge-tokyo".into(),
            source: kube::Error::LinesCodecMaxLineLengthExceeded,
        };
        assert!(
            err.to_string()
                .starts_with("applying Deployment video/live-edge-tokyo: "),
            "{err}"
        );
        assert_eq!(err.metric_label(), "apply_deployment");
        assert_eq!(err.reason(), "ApplyFailed");
        let labels: std::collections::BTreeSet<String> = Kind::ALL
            .iter()
            .flat_map(|&kind| {
                let src = || kube::Error::LinesCodecMaxLineLengthExceeded;
                let (namespace, name) = (String::new(), String::new());
                [
                    Error::Apply {
                        kind,
                        namespace: namespace.clone(),
                        name: name.clone(),
                        source: src(),
                    }
                    .metric_label(),
                    Error::Prune {
                        kind,
                        namespace,
                        name,
                        source: src(),
                    }
                    .metric_label(),
                ]
            })
            .collect();
        assert_eq!(labels.len(), 14);
    }
}
