//! Live applications and how their streams are packaged as HLS.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{Config, RESERVED_APP_NAMES, Role, check_name};

/// One live application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Application name: the first path segment of stream URLs.
    pub name: String,
    /// Record every stream of this application.
    pub record: bool,
    /// Record only these stream names (in addition to `record: true` recording all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub record_streams: Vec<String>,
}

/// HLS packaging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConfig {
    /// Package live streams as HLS at all.
    pub enabled: bool,
    /// Target segment duration in seconds (segments are cut on the first keyframe after it).
    pub segment_duration_secs: u32,
    /// Number of segments in the live playlist's sliding window.
    pub window: u32,
    /// Low-latency HLS with CMAF (fMP4) parts at `/APP/NAME/ll.m3u8`.
    pub ll: LlHlsConfig,
}

/// Low-latency HLS (CMAF segments and parts, blocking reloads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlHlsConfig {
    /// Cut CMAF parts and serve `ll.m3u8` (needs `hls.enabled`).
    pub enabled: bool,
    /// Part target duration in milliseconds (parts end at frame boundaries at or before it).
    pub part_duration_ms: u32,
}

impl Default for LlHlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            part_duration_ms: 500,
        }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            name: "live".to_owned(),
            record: false,
            record_streams: Vec::new(),
        }
    }
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            segment_duration_secs: 2,
            window: 6,
            ll: LlHlsConfig::default(),
        }
    }
}

/// The applications (an origin needs one; names valid, not reserved, not
/// twice) and the HLS packaging's ranges.
pub(super) fn validate_apps(config: &Config, bad: &mut impl FnMut(&str, String)) {
    if config.role == Role::Origin && config.apps.is_empty() {
        bad(
            "apps",
            "an origin needs at least one live application".into(),
        );
    }
    let mut seen = HashSet::new();
    for (i, app) in config.apps.iter().enumerate() {
        let field = format!("apps[{i}].name");
        if let Err(why) = check_name(&app.name) {
            bad(&field, why);
        } else if RESERVED_APP_NAMES.contains(&app.name.as_str()) {
            bad(
                &field,
                format!("{:?} is reserved for the HTTP server's own paths", app.name),
            );
        } else if !seen.insert(app.name.as_str()) {
            bad(&field, format!("{:?} appears twice", app.name));
        }
        for (j, stream) in app.record_streams.iter().enumerate() {
            if let Err(why) = check_name(stream) {
                bad(&format!("apps[{i}].record_streams[{j}]"), why);
            }
        }
    }
    if config.hls.segment_duration_secs == 0 || config.hls.segment_duration_secs > 60 {
        bad(
            "hls.segment_duration_secs",
            format!("{} is outside 1..=60", config.hls.segment_duration_secs),
        );
    }
    if !(50..=5000).contains(&config.hls.ll.part_duration_ms) {
        bad(
            "hls.ll.part_duration_ms",
            format!("{} is outside 50..=5000", config.hls.ll.part_duration_ms),
        );
    }
    if config.hls.window == 0 {
        bad("hls.window", "must be at least 1".into());
    }
}
