//! Counters of the hub: per stream (for `/api/streams`) and process-wide by
//! protocol (for `/metrics`). Plain atomics so the media path never locks
//! for accounting.

use std::sync::atomic::{AtomicU64, Ordering};

/// How a session receives media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// RTMP play.
    Rtmp,
    /// HTTP-FLV.
    Flv,
    /// HLS (sessions seen recently, not connections).
    Hls,
    /// In-process consumers (HLS segmenter, recorder): never counted as viewers.
    Internal,
}

impl Protocol {
    /// Protocols that count as viewers, in a stable order.
    pub const VIEWER: [Protocol; 3] = [Protocol::Rtmp, Protocol::Flv, Protocol::Hls];

    /// Lowercase name used in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Flv => "flv",
            Protocol::Hls => "hls",
            Protocol::Internal => "internal",
        }
    }

    fn index(self) -> usize {
        match self {
            Protocol::Rtmp => 0,
            Protocol::Flv => 1,
            Protocol::Hls => 2,
            Protocol::Internal => 3,
        }
    }
}

/// One counter per protocol.
#[derive(Debug, Default)]
pub struct PerProtocol([AtomicU64; 4]);

impl PerProtocol {
    /// Adds `n` to the protocol's counter.
    pub fn add(&self, p: Protocol, n: u64) {
        self.0[p.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n` (gauges).
    pub fn sub(&self, p: Protocol, n: u64) {
        self.0[p.index()].fetch_sub(n, Ordering::Relaxed);
    }

    /// The protocol's current value.
    pub fn get(&self, p: Protocol) -> u64 {
        self.0[p.index()].load(Ordering::Relaxed)
    }
}

/// Process-wide counters, rendered by `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open RTMP connections (publishers and players).
    pub rtmp_connections: AtomicU64,
    /// RTMP connections accepted since start.
    pub rtmp_connections_total: AtomicU64,
    /// Open HTTP connections.
    pub http_connections: AtomicU64,
    /// HTTP connections accepted since start.
    pub http_connections_total: AtomicU64,
    /// Connections closed because of malformed input or limits.
    pub connections_rejected: AtomicU64,
    /// Media bytes received from publishers.
    pub bytes_in: AtomicU64,
    /// Bytes written to viewers, by protocol.
    pub bytes_out: PerProtocol,
    /// Frames viewers skipped because they fell behind, by protocol.
    pub dropped_frames: PerProtocol,
    /// Viewers disconnected for being too slow, by protocol.
    pub slow_viewers_dropped: PerProtocol,
    /// Publish attempts refused (stream busy, unknown app).
    pub publish_refused: AtomicU64,
    /// Publishes refused by authorization or a busy stream, by reason (`auth`).
    pub publish_refused_by: crate::auth::RefusalCounts,
    /// Plays refused by authorization, by reason (`auth`).
    pub play_refused: crate::auth::RefusalCounts,
    /// Hostile input refused, by reason (`peer_limits`).
    pub refused: crate::peer_limits::Refusals,
}

/// Counters of one stream (all publications of one key).
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Current viewers by protocol (HLS is computed from recent sessions instead).
    pub viewers: PerProtocol,
    /// Bytes received from the publisher.
    pub bytes_in: AtomicU64,
    /// Bytes sent to viewers.
    pub bytes_out: AtomicU64,
    /// Frames skipped by slow viewers.
    pub dropped_frames: AtomicU64,
}

/// Codec name of a video sequence header / frame (FLV codec id or enhanced-RTMP `FourCC`).
pub fn video_codec_name(data: &[u8]) -> Option<String> {
    let first = *data.first()?;
    if first & 0x80 != 0 {
        let fourcc = data.get(1..5)?;
        return Some(match fourcc {
            b"hvc1" => "hevc".to_owned(),
            b"av01" => "av1".to_owned(),
            b"vp09" => "vp9".to_owned(),
            b"avc1" => "h264".to_owned(),
            other => String::from_utf8_lossy(other).into_owned(),
        });
    }
    Some(
        match first & 0x0f {
            2 => "h263",
            3 => "screen",
            4 => "vp6",
            5 => "vp6a",
            6 => "screen2",
            7 => "h264",
            12 => "hevc",
            _ => return None,
        }
        .to_owned(),
    )
}

/// Codec name of an FLV audio tag.
pub fn audio_codec_name(data: &[u8]) -> Option<String> {
    let first = *data.first()?;
    Some(
        match first >> 4 {
            0 | 3 => "pcm",
            1 => "adpcm",
            2 | 14 => "mp3",
            4..=6 => "nellymoser",
            7 => "alaw",
            8 => "mulaw",
            10 => "aac",
            11 => "speex",
            _ => return None,
        }
        .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names() {
        assert_eq!(video_codec_name(&[0x17, 0]).as_deref(), Some("h264"));
        assert_eq!(
            video_codec_name(&[0x90, b'h', b'v', b'c', b'1']).as_deref(),
            Some("hevc")
        );
        assert_eq!(audio_codec_name(&[0xaf, 0]).as_deref(), Some("aac"));
        assert_eq!(video_codec_name(&[]), None);
    }

    #[test]
    fn per_protocol_counts() {
        let c = PerProtocol::default();
        c.add(Protocol::Flv, 3);
        c.sub(Protocol::Flv, 1);
        assert_eq!(c.get(Protocol::Flv), 2);
        assert_eq!(c.get(Protocol::Rtmp), 0);
    }
}
