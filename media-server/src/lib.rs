//! Fleetcast media server library: protocols, containers, the stream hub and
//! the origin and edge roles, driven by the `fleetcast-media` binary.
pub mod media;
