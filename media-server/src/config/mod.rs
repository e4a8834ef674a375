//! The media server's whole configuration: the YAML file the operator renders
//! (it reuses these types and `serde_yaml_ng::to_string`) and the reference
//! file `media-server/fleetcast-media.yaml` documents field by field.
//!
//! Every struct rejects unknown fields so a typo fails at start instead of
//! being silently ignored, and every field has a default so a file only says
//! what differs.

mod apps;
mod auth;
mod delivery;
mod edge;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use apps::{AppConfig, HlsConfig, LlHlsConfig};
pub use auth::{AuthConfig, WebhookConfig};
pub use delivery::{
    AdminConfig, DEFAULT_WRITE_INTERVAL_MS, HttpConfig, Limits, PlaybackConfig, RtmpConfig,
};
pub use edge::{BalancingConfig, BalancingMode, CacheConfig, EdgeConfig};

use apps::validate_apps;
use auth::validate_auth;
use delivery::{validate_admin, validate_delivery, validate_limits};
use edge::validate_edge;

/// Which job this process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes publishers, serves live streams, VOD files and recordings.
    #[default]
    Origin,
    /// Pulls streams from upstreams on demand and caches media for viewers.
    Edge,
}

impl Role {
    /// The name the config, the APIs and the pages use.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Origin => "origin",
            Role::Edge => "edge",
        }
    }
}

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `origin` or `edge`.
    pub role: Role,
    /// RTMP listener.
    pub rtmp: RtmpConfig,
    /// Public HTTP listener (HTTP-FLV, HLS, VOD, health).
    pub http: HttpConfig,
    /// Admin HTTP listener (`/api/*`, `/metrics`, health), cluster-internal.
    pub admin: AdminConfig,
    /// Origin: VOD files under `data_dir/vod`, recordings under `data_dir/recordings`.
    pub data_dir: PathBuf,
    /// Live applications (the `APP` in `rtmp://HOST/APP/NAME`).
    pub apps: Vec<AppConfig>,
    /// HLS packaging of live streams.
    pub hls: HlsConfig,
    /// How live media is written to RTMP, HTTP-FLV and live MP4 viewers.
    /// Left out of a written config while it has its defaults, so the
    /// operator's rendered file still starts an older media image (which
    /// refuses fields it does not know).
    #[serde(skip_serializing_if = "PlaybackConfig::is_default")]
    pub playback: PlaybackConfig,
    /// Bounds that protect the server from peers.
    pub limits: Limits,
    /// Logging.
    pub log: LogConfig,
    /// Who may publish.
    pub auth: AuthConfig,
    /// Leaving gracefully on SIGTERM (readiness fails, viewers keep playing for a while).
    pub drain: crate::drain::DrainConfig,
    /// Edge settings; required when `role` is `edge`, ignored otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge: Option<EdgeConfig>,
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `fleetcast_media=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration that could not be read or does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is malformed or has unknown fields.
    #[error("parsing config: {0}")]
    Parse(#[from] serde_yaml_ng::Error),
    /// Parsed, but some values are invalid; each problem names its field.
    #[error("invalid config: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// Default RTMP port.
pub const DEFAULT_RTMP_PORT: u16 = 1935;
/// Default HTTP port.
pub const DEFAULT_HTTP_PORT: u16 = 8080;
/// Default admin port.
pub const DEFAULT_ADMIN_PORT: u16 = 8081;
/// Path segments the HTTP router uses itself, so no live app may take them.
pub const RESERVED_APP_NAMES: &[&str] = &["api", "healthz", "metrics", "vod", "readyz"];
/// RTMP's message length field is 24 bits.
pub const RTMP_MAX_MESSAGE_SIZE: u32 = 0x00ff_ffff;

impl Default for Config {
    fn default() -> Self {
        Self {
            role: Role::Origin,
            rtmp: RtmpConfig::default(),
            http: HttpConfig::default(),
            admin: AdminConfig::default(),
            data_dir: PathBuf::from("/data"),
            apps: vec![AppConfig::default()],
            hls: HlsConfig::default(),
            playback: PlaybackConfig::default(),
            limits: Limits::default(),
            log: LogConfig::default(),
            auth: AuthConfig::default(),
            drain: crate::drain::DrainConfig::default(),
            edge: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Config {
    /// Parses YAML (an empty document gives the defaults). Does not validate:
    /// call [`Config::validate`] (or use [`Config::load`]).
    pub fn from_yaml_str(yaml: &str) -> Result<Self, ConfigError> {
        if yaml.trim().is_empty() {
            return Ok(Self::default());
        }
        Ok(serde_yaml_ng::from_str(yaml)?)
    }

    /// Renders the config as YAML.
    pub fn to_yaml_string(&self) -> Result<String, ConfigError> {
        Ok(serde_yaml_ng::to_string(self)?)
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_yaml_str(&text)?;
        config.expand_env(|name| std::env::var(name).ok());
        config.validate()?;
        Ok(config)
    }

    /// Expands `${VAR}` in per-pod values (`edge.balancing.advertise`, so one
    /// config map serves every pod of a pool); `FLEETCAST_ADVERTISE`, when
    /// set, replaces `advertise` outright. Unknown variables expand to "".
    pub fn expand_env(&mut self, lookup: impl Fn(&str) -> Option<String>) {
        if let Some(edge) = &mut self.edge {
            if let Some(adv) = lookup("FLEETCAST_ADVERTISE") {
                edge.balancing.advertise = Some(adv);
            } else if let Some(adv) = &edge.balancing.advertise {
                edge.balancing.advertise = Some(expand_vars(adv, &lookup));
            }
        }
    }

    /// The live application with this name, if configured.
    pub fn app(&self, name: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.name == name)
    }

    /// Directory of VOD files (`data_dir/vod`).
    pub fn vod_dir(&self) -> PathBuf {
        self.data_dir.join("vod")
    }

    /// Directory of recordings (`data_dir/recordings`).
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }

    /// Checks values serde cannot: ranges, names, cross-field rules. Reports
    /// every problem at once, each naming its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut bad = |field: &str, why: String| problems.push(format!("{field}: {why}"));

        validate_delivery(self, &mut bad);
        // Port 0 (any free port) may appear on both.
        if self.rtmp.listen == self.http.listen && self.http.listen.port() != 0 {
            bad(
                "http.listen",
                format!("{} is also rtmp.listen", self.http.listen),
            );
        }
        validate_admin(self, &mut bad);
        validate_apps(self, &mut bad);
        validate_limits(&self.limits, &mut bad);
        validate_auth(&self.auth, &mut bad);
        match (&self.role, &self.edge) {
            (Role::Edge, None) => bad("edge", "required when role is edge".into()),
            (Role::Edge, Some(edge)) => validate_edge(edge, &mut bad),
            (Role::Origin, _) => {}
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// Replaces `${NAME}` with `lookup(NAME)` (empty when unset).
pub fn expand_vars(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        if let Some(end) = after.find('}') {
            let value = lookup(&after[..end]).unwrap_or_default();
            rest = &after[end + 1..];
            // `${POD_IP}:8080` on an IPv6 pod: `[fd00::5]:8080`, the form
            // socket addresses print as (peers compare equal, URLs work).
            let host_port = rest.starts_with(':') && !out.ends_with('[');
            if host_port && value.parse::<std::net::Ipv6Addr>().is_ok() {
                out.push('[');
                out.push_str(&value);
                out.push(']');
            } else {
                out.push_str(&value);
            }
        } else {
            out.push_str(&rest[start..]);
            rest = "";
        }
    }
    out.push_str(rest);
    out
}

/// App and stream names: one URL path segment of safe characters, so they can
/// also name files and never escape a directory.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!("{name:?} must be 1 to 128 characters"));
    }
    if name.starts_with('.') {
        return Err(format!("{name:?} must not start with '.'"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "{name:?} may only hold ASCII letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_yaml_is_the_defaults_and_valid() {
        let c = Config::from_yaml_str("").unwrap();
        assert_eq!(c, Config::default());
        c.validate().unwrap();
        assert_eq!(c.rtmp.listen.port(), 1935);
        assert_eq!(c.http.listen.port(), 8080);
        assert_eq!(c.apps[0].name, "live");
    }

    #[test]
    fn reference_config_parses_and_validates() {
        let text = include_str!("../../fleetcast-media.yaml");
        let c = Config::from_yaml_str(text).unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn round_trips_through_yaml() {
        let mut c = Config {
            role: Role::Edge,
            ..Config::default()
        };
        c.edge = Some(EdgeConfig {
            upstreams: vec!["rtmp://origins.ns.svc:1935".into()],
            balancing: BalancingConfig {
                mode: BalancingMode::Clustered,
                peer_service: Some("edges.ns.svc".into()),
                ..BalancingConfig::default()
            },
            ..EdgeConfig::default()
        });
        c.validate().unwrap();
        let yaml = c.to_yaml_string().unwrap();
        assert_eq!(Config::from_yaml_str(&yaml).unwrap(), c);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err =
            Config::from_yaml_str("rtmp: { listen: \"0.0.0.0:1935\", chunksize: 10 }").unwrap_err();
        assert!(err.to_string().contains("chunksize"), "{err}");
    }

    #[test]
    fn playback_is_written_only_when_set() {
        let default = Config::default().to_yaml_string().unwrap();
        assert!(!default.contains("playback"), "{default}");
        let mut config = Config::default();
        config.playback.write_interval_ms = 0;
        let yaml = config.to_yaml_string().unwrap();
        assert!(yaml.contains("write_interval_ms: 0"), "{yaml}");
        assert_eq!(Config::from_yaml_str(&yaml).unwrap(), config);
    }

    #[test]
    fn invalid_values_are_all_named() {
        let yaml = "
role: edge
rtmp: { chunk_size: 10 }
apps: [ { name: vod }, { name: \"a/b\" } ]
hls: { window: 0 }
playback: { write_interval_ms: 5000 }
limits: { viewer_queue_frames: 20 }
";
        let err = Config::from_yaml_str(yaml)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        for field in [
            "rtmp.chunk_size",
            "apps[0].name",
            "apps[1].name",
            "hls.window",
            "playback.write_interval_ms",
            "limits.viewer_queue_frames",
            "edge: required",
        ] {
            assert!(err.contains(field), "{field} missing in {err}");
        }
    }

    #[test]
    fn duplicate_apps_and_bad_upstreams() {
        let yaml = "
role: edge
apps: [ { name: live }, { name: live } ]
edge: { upstreams: [ \"ftp://x\" ], balancing: { mode: redirect, peers: [a] } }
";
        let err = Config::from_yaml_str(yaml)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("appears twice"), "{err}");
        assert!(err.contains("edge.upstreams[0]"), "{err}");
        assert!(err.contains("edge.balancing.advertise"), "{err}");
    }

    #[test]
    fn advertise_expands_pod_variables() {
        let mut c = Config {
            role: Role::Edge,
            edge: Some(EdgeConfig {
                upstreams: vec!["rtmp://o:1935".into()],
                balancing: BalancingConfig {
                    mode: BalancingMode::Redirect,
                    peers: vec!["a:8080".into()],
                    advertise: Some("${POD_IP}:8080".into()),
                    ..BalancingConfig::default()
                },
                ..EdgeConfig::default()
            }),
            ..Config::default()
        };
        c.expand_env(|v| (v == "POD_IP").then(|| "10.1.2.3".to_owned()));
        let adv = c.edge.as_ref().unwrap().balancing.advertise.clone();
        assert_eq!(adv.as_deref(), Some("10.1.2.3:8080"));
        c.expand_env(|v| (v == "FLEETCAST_ADVERTISE").then(|| "edge-0:80".to_owned()));
        let adv = c.edge.as_ref().unwrap().balancing.advertise.clone();
        assert_eq!(adv.as_deref(), Some("edge-0:80"));
        assert_eq!(expand_vars("a${X}b${Y", |_| Some("1".into())), "a1b${Y");
    }

    #[test]
    fn ipv6_pod_addresses_are_bracketed_before_a_port() {
        let v6 = |_: &str| Some("fd00::5".to_owned());
        assert_eq!(expand_vars("${POD_IP}:8080", v6), "[fd00::5]:8080");
        assert_eq!(expand_vars("[${POD_IP}]:8080", v6), "[fd00::5]:8080");
        assert_eq!(expand_vars("${POD_IP}", v6), "fd00::5");
        let v4 = |_: &str| Some("10.1.2.3".to_owned());
        assert_eq!(expand_vars("${POD_IP}:8080", v4), "10.1.2.3:8080");
    }

    #[test]
    fn admin_listener_defaults_and_must_not_share_a_port() {
        let c = Config::default();
        assert_eq!(c.admin.listen.port(), DEFAULT_ADMIN_PORT);
        assert_eq!(c.admin.token_file, None);
        let same = Config::from_yaml_str(
            "http: { listen: \"0.0.0.0:9000\" }\nadmin: { listen: \"0.0.0.0:9000\", token_file: /t }\n",
        )
        .unwrap();
        let err = same.validate().unwrap_err().to_string();
        assert!(err.contains("admin.listen"), "{err}");
        let edge = Config::from_yaml_str("role: edge\nedge: { upstreams: [\"http://o:8080\"] }\n")
            .unwrap();
        assert_eq!(edge.edge.as_ref().unwrap().upstream_admin_port, 8081);
        let zero = Config::from_yaml_str(
            "role: edge\nedge: { upstreams: [\"http://o:8080\"], upstream_admin_port: 0 }\n",
        )
        .unwrap();
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.contains("edge.upstream_admin_port"), "{err}");
    }

    #[test]
    fn names_never_escape_a_directory() {
        assert!(check_name("..").is_err());
        assert!(check_name("a/../b").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("cam-1_hd.v2").is_ok());
    }
}
