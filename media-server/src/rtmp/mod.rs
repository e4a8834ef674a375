//! RTMP: handshake, chunk stream, messages and the server and client
//! sessions as pure state machines (no sockets, no clocks), plus the tokio
//! connection layer (`conn`) that feeds them.
//!
//! Written by hand rather than with `rml_rtmp` or `scuffle-rtmp`: the server
//! must encode each media message once and share the chunk bytes among
//! all viewers (type-0 first chunks with absolute timestamps, same chunk
//! size and stream ids for everyone), which neither crate's session API
//! allows, and the I/O layer must own vectored, batched writes.

pub mod chunk;
pub mod client;
pub mod conn;
pub mod handshake;
pub mod ingest_rate;
pub mod message;
pub mod pull;
pub mod session;

pub use client::{ClientEvent, ClientSession, Mode};
pub use pull::{PullError, Puller, Pusher};
pub use session::{RtmpError, ServerEvent, ServerSession, SessionConfig};
