//! The edge role: live streams pulled on demand from upstreams (origins,
//! other edges, any RTMP server) into the local hub, shared by every local
//! viewer, closed when idle, found again on another origin when the one
//! holding a stream goes away; and the pool's balancing (rendezvous
//! ownership of streams among peer edges).

pub mod rendezvous;
