//! Support for the end-to-end tests: Fleetcast's images imported into the
//! local node, Services reached from the host, and the media clients
//! (ffmpeg, ffprobe, the load tool) run against them.
//!
//! The tests run on `Cluster::with_node()`: the shared control plane plus a
//! node (`tests/cluster/up --node`), so pods really start, Services really
//! route (kube-proxy) and names really resolve (`CoreDNS`).

pub mod images;
pub mod kube_util;
pub mod load;
pub mod media;

use std::time::Duration;

/// How long a pod may take to start on the shared 2-core test machine: a
/// bound for waiting, not a performance assertion.
pub const POD_PATIENCE: Duration = Duration::from_mins(4);
