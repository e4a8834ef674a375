//! HLS: MPEG-TS segments cut on keyframes, the sliding live window and its
//! playlist.

pub mod playlist;
pub mod segmenter;

pub use segmenter::{Segment, Segmenter, SegmenterConfig};

#[cfg(test)]
pub(crate) mod testdata;
