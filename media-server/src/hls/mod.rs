//! HLS: MPEG-TS segments cut on keyframes, the sliding live window and its
//! playlist.

pub mod cmaf;
pub mod http;
pub mod ll_http;
pub mod ll_playlist;
pub mod playlist;
pub mod segmenter;
pub mod service;

pub use http::routes;
pub use segmenter::{Segment, Segmenter, SegmenterConfig};
pub use service::HlsService;

#[cfg(test)]
pub(crate) mod testdata;
