//! Video on demand: files under `data_dir/vod/` and recordings under
//! `data_dir/recordings/` served over HTTP (`/vod/FILE`,
//! `/vod/recordings/APP/FILE`) with ranges, and played over RTMP
//! (`rtmp://HOST/vod/FILE`, `mp4:FILE`) by demuxing FLV and MP4 files into
//! tags paced in real time.

pub mod http;
pub mod mp4;
pub mod path;
pub mod rtmp;

pub use http::routes;
pub use path::VodRoots;

/// Why a VOD file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum VodError {
    /// The path is malformed or tries to leave the root.
    #[error("bad VOD path")]
    BadPath,
    /// No such file (or it is not a regular file inside the root).
    #[error("VOD file not found")]
    NotFound,
    /// The file is not a format we play.
    #[error("unsupported VOD file format")]
    Unsupported,
    /// The MP4 file could not be read.
    #[error("MP4: {0}")]
    Mp4(String),
    /// The FLV file could not be read.
    #[error("FLV: {0}")]
    Flv(#[from] crate::flv::FlvError),
    /// Reading the file failed.
    #[error("reading VOD file: {0}")]
    Io(#[from] std::io::Error),
}
