//! Test support shared by the Fleetcast test suites.
//!
//! [`cluster::Cluster`] is the Kubernetes the operator tests run on: the local
//! control plane built and started by `tests/cluster/`, or the user's own
//! cluster when `KUBECONFIG` is set.

pub mod binary;
pub mod cluster;
pub mod wait;

use std::path::PathBuf;

/// The repository root (where the workspace `Cargo.toml` lives).
///
/// Found from this crate's manifest dir, so it is right whichever crate's
/// test calls it.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // tests/support -> tests -> root
    manifest
        .parent()
        .and_then(std::path::Path::parent)
        .map_or(manifest.clone(), std::path::Path::to_path_buf)
}
