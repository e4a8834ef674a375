//! How the server meets its peers: the RTMP, public HTTP and admin
//! listeners, how live media is written to viewers, and the limits on what
//! peers may cost.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    Config, DEFAULT_ADMIN_PORT, DEFAULT_HTTP_PORT, DEFAULT_RTMP_PORT, RTMP_MAX_MESSAGE_SIZE,
};

/// Live playback settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlaybackConfig {
    /// Milliseconds between writes to a live viewer (0..=1000): a stream
    /// wakes its viewers this often (and at once for a keyframe) and each
    /// writes what came in one syscall. Larger costs less CPU per viewer
    /// and adds up to this much latency; 0 writes every frame as it comes.
    pub write_interval_ms: u64,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            write_interval_ms: DEFAULT_WRITE_INTERVAL_MS,
        }
    }
}

impl PlaybackConfig {
    /// Every field at its default.
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// See [`PlaybackConfig::write_interval_ms`].
pub const DEFAULT_WRITE_INTERVAL_MS: u64 = 200;

/// RTMP listener settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Outgoing chunk size announced to every peer (Set Chunk Size), bytes.
    pub chunk_size: u32,
}

/// HTTP listener settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
}

/// Admin listener settings: the API and metrics live here, not on the
/// public port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// A file holding the Bearer token every mutating admin request needs
    /// (surrounding whitespace ignored; read again on every such request,
    /// so a rotated Secret takes effect without a restart). Unset: mutating
    /// requests are refused with 403.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

/// Limits on what peers may cost the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Simultaneous connections (RTMP and HTTP together); more wait in the accept queue.
    pub max_connections: usize,
    /// Largest RTMP message accepted, bytes; a larger one closes the connection.
    pub max_message_size: u32,
    /// Seconds a new RTMP connection has to complete its handshake.
    pub handshake_timeout_secs: u64,
    /// Seconds without any byte from a peer before it is disconnected.
    pub idle_timeout_secs: u64,
    /// Media messages queued per viewer before it skips to the next keyframe.
    pub viewer_queue_frames: usize,
    /// Connections one address may hold at once (RTMP and HTTP together);
    /// more are closed at accept. 0 = no limit.
    pub max_connections_per_ip: usize,
    /// Largest HTTP request head (request line and headers), bytes; a larger
    /// one is answered 431 and the connection closed.
    pub max_http_head_bytes: usize,
    /// Seconds an HTTP client has to send a whole request head once it has
    /// connected or started one (slowloris); then 408 and close.
    pub http_head_timeout_secs: u64,
    /// Average media bitrate a publisher may send, bits/s (bursts of a few
    /// seconds above it are allowed); a publisher over it is disconnected.
    /// 0 = no cap.
    pub max_publish_bitrate: u64,
}

fn any_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

impl Default for RtmpConfig {
    fn default() -> Self {
        Self {
            listen: any_addr(DEFAULT_RTMP_PORT),
            chunk_size: 4096,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: any_addr(DEFAULT_HTTP_PORT),
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: any_addr(DEFAULT_ADMIN_PORT),
            token_file: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_message_size: 8 * 1024 * 1024,
            handshake_timeout_secs: 10,
            idle_timeout_secs: 60,
            viewer_queue_frames: 512,
            max_connections_per_ip: 2000,
            max_http_head_bytes: 16 * 1024,
            http_head_timeout_secs: 10,
            max_publish_bitrate: 100_000_000,
        }
    }
}

/// How media is written to players: RTMP chunks and the write interval.
pub(super) fn validate_delivery(config: &Config, bad: &mut impl FnMut(&str, String)) {
    if !(128..=65_536).contains(&config.rtmp.chunk_size) {
        bad(
            "rtmp.chunk_size",
            format!("{} is outside 128..=65536", config.rtmp.chunk_size),
        );
    }
    let interval = config.playback.write_interval_ms;
    if interval > 1000 {
        bad(
            "playback.write_interval_ms",
            format!("{interval} is over 1000"),
        );
    }
    // Viewers take from the ring once per interval: it must hold two
    // intervals of a busy stream (100 frames/s: 60 fps video and 48 kHz
    // AAC), or viewers that keep up would be taken for slow ones.
    let needed = usize::try_from(interval / 5).unwrap_or(usize::MAX);
    if config.limits.viewer_queue_frames < needed {
        bad(
            "limits.viewer_queue_frames",
            format!(
                "{} holds less than two playback.write_interval_ms ({interval} ms) of a \
                 100 frames/s stream: raise it to at least {needed} or lower the interval",
                config.limits.viewer_queue_frames
            ),
        );
    }
}

pub(super) fn validate_admin(config: &Config, bad: &mut impl FnMut(&str, String)) {
    let others = [
        ("rtmp.listen", config.rtmp.listen),
        ("http.listen", config.http.listen),
    ];
    for (field, other) in others {
        // Port 0 (any free port) may appear on several.
        if config.admin.listen == other && other.port() != 0 {
            bad("admin.listen", format!("{other} is also {field}"));
        }
    }
}

/// The connection and message limits: each at least what a working server
/// needs.
pub(super) fn validate_limits(l: &Limits, bad: &mut impl FnMut(&str, String)) {
    if l.max_connections == 0 {
        bad("limits.max_connections", "must be at least 1".into());
    }
    if !(1024..=RTMP_MAX_MESSAGE_SIZE).contains(&l.max_message_size) {
        bad(
            "limits.max_message_size",
            format!(
                "{} is outside 1024..={RTMP_MAX_MESSAGE_SIZE}",
                l.max_message_size
            ),
        );
    }
    if l.handshake_timeout_secs == 0 {
        bad("limits.handshake_timeout_secs", "must be at least 1".into());
    }
    if l.idle_timeout_secs == 0 {
        bad("limits.idle_timeout_secs", "must be at least 1".into());
    }
    if l.max_http_head_bytes < 1024 {
        bad(
            "limits.max_http_head_bytes",
            format!("{} is below 1024", l.max_http_head_bytes),
        );
    }
    if l.http_head_timeout_secs == 0 {
        bad("limits.http_head_timeout_secs", "must be at least 1".into());
    }
    if l.viewer_queue_frames < 16 {
        bad(
            "limits.viewer_queue_frames",
            format!("{} is below 16", l.viewer_queue_frames),
        );
    }
}
