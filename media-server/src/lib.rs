//! Fleetcast media server library: protocols, containers, the stream hub and
//! the origin and edge roles, driven by the `fleetcast-media` binary.
//!
//! Layers: bytes → containers (`flv`) → protocols (`rtmp`, `http`) → the
//! stream `hub` → roles (`server`) → the binary.
pub mod admin;
pub mod amf0;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod drain;
pub mod edge;
pub mod flv;
pub mod fmp4;
pub mod fuzzing;
pub mod hls;
pub mod http;
pub mod http_file;
pub mod hub;
pub mod media;
pub mod page;
pub mod peer_limits;
pub mod range;
pub mod record;
pub mod rtmp;
pub mod server;
pub mod socket_send;
pub mod stats;
pub mod ts;
pub mod vod;
