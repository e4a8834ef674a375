//! MPEG-TS muxing for HLS: H.264 (stream type 0x1b) and AAC in ADTS (0x0f).
//!
//! Written by hand rather than on the `mpeg2ts` crate: that crate models one
//! packet at a time and leaves PES splitting, adaptation-field stuffing,
//! PCR placement and continuity counters to its caller, which is most of a
//! muxer; this writer does exactly those in ~300 lines with no per-packet
//! allocation. `mpeg2ts`'s reader is used in the tests as an independent
//! check of the bytes we write.

pub mod codec;
pub mod muxer;
pub mod packet;

pub use muxer::{MuxError, Muxed, TsMuxer};
