//! Fragmented MP4 (CMAF) muxing: the init segment (`ftyp` + `moov` with
//! `avc1`/`avcC` and `mp4a`/`esds`) and media fragments (`moof` + `mdat`,
//! optionally behind `styp` and `prft`) built from the hub's FLV tags.
//!
//! Boxes are encoded with `mp4-atom` (kixelated's ISO-BMFF atom codec, the
//! one moq uses): it writes every box we need, `prft` and `styp` included,
//! takes codec records as they are (the FLV AVC sequence header is an `avcC`
//! body; the AAC `AudioSpecificConfig` goes into `esds` verbatim), and leaves
//! cutting and timing to us. The `mp4` crate (already used for VOD demux)
//! writes only whole progressive files, not fragments.
//!
//! Pure logic, no clocks: wall-clock time for `prft` is passed in.

pub mod fragment;
pub mod init;
mod sps;

pub use fragment::{Fragmenter, FragmenterConfig, Part};
pub use init::{AudioTrack, Tracks, VideoTrack};

use thiserror::Error;

/// Track id of the video track (also the `prft` reference track).
pub const VIDEO_TRACK: u32 = 1;
/// Track id of the audio track.
pub const AUDIO_TRACK: u32 = 2;
/// Video media timescale (MPEG's 90 kHz clock; FLV milliseconds × 90).
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// Why a box could not be written.
#[derive(Debug, Error)]
pub enum Fmp4Error {
    /// The AVC decoder configuration record does not parse.
    #[error("malformed AVC decoder configuration record")]
    AvcConfig,
    /// The AAC `AudioSpecificConfig` does not parse.
    #[error("unsupported AAC AudioSpecificConfig")]
    AacConfig,
    /// `mp4-atom` refused to encode a box.
    #[error("encoding {0}: {1}")]
    Encode(&'static str, mp4_atom::Error),
}
