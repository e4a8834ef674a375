//! The media server's whole configuration: the YAML file the operator renders
//! (it reuses these types and `serde_yaml_ng::to_string`) and the reference
//! file `media-server/fleetcast-media.yaml` documents field by field.
//!
//! Every struct rejects unknown fields so a typo fails at start instead of
//! being silently ignored, and every field has a default so a file only says
//! what differs.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// Log output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `fleetcast_media=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

/// Who may publish and who may play (see `docs/security.md`). Every
/// field is optional; without any, anyone may publish to a configured app
/// and play anything.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// A file holding the publish token(s), one per line (surrounding
    /// whitespace ignored; read again when it changes). When set,
    /// publishers must add `?token=TOKEN` to the stream name
    /// (`rtmp://HOST/live/NAME?token=TOKEN`, or the OBS stream key
    /// `NAME?token=TOKEN`); others get `NetStream.Publish.BadAuth`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_token_file: Option<PathBuf>,
    /// A directory of publish keys (a mounted Secret): file `APP.NAME`
    /// holds the keys of stream `APP/NAME`, file `APP` those of every
    /// stream of `APP`, one per line. Publishers add `?key=KEY` to the
    /// stream name. Read again when the files change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_keys_dir: Option<PathBuf>,
    /// An HTTP callback asked about every publish (2xx allows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_webhook: Option<WebhookConfig>,
    /// A second publisher of a live stream replaces the first (whose
    /// connection is closed) instead of being refused.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_takeover: bool,
    /// HMAC-SHA256 secret(s) for signed playback URLs, one per line: the
    /// first signs (edges' upstream requests, `sign-url`), every line verifies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub play_signing_secret_file: Option<PathBuf>,
    /// Signed playback URLs are bound to the viewer's IP address.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub play_signing_bind_addr: bool,
    /// An HTTP callback asked about every play (HLS: once per session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub play_webhook: Option<WebhookConfig>,
}

/// An authorization webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://HOST:PORT/PATH`, sent a JSON `POST`.
    pub url: String,
    /// Milliseconds to wait for the whole answer; none in time denies.
    pub timeout_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_ms: 2000,
        }
    }
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

/// Edge role settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Where streams and files come from: `rtmp://HOST:PORT` and `http://HOST:PORT` URLs.
    pub upstreams: Vec<String>,
    /// Seconds an upstream pull stays open after its last viewer leaves.
    pub idle_timeout_secs: u64,
    /// Seconds a relayed stream whose upstream went away is kept (its
    /// viewers connected) while the edge looks for it again. It must cover
    /// the publisher reconnecting to another origin plus the cluster DNS
    /// catching up with a replacement origin pod (`CoreDNS` caches headless
    /// Service records for 30 s in a default cluster).
    pub failover_secs: u64,
    /// Pull-through cache for HTTP objects (HLS segments, VOD files).
    pub cache: CacheConfig,
    /// How edges of one pool share streams.
    pub balancing: BalancingConfig,
    /// The admin port of upstreams and peer edges: an edge asks
    /// `http://HOST:THIS/api/streams` to locate a stream.
    pub upstream_admin_port: u16,
}

/// Edge cache tiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Directory of the disk tier.
    pub dir: PathBuf,
    /// Bytes of the memory tier.
    pub memory_bytes: u64,
    /// Bytes of the disk tier; 0 = no disk tier (memory only; objects
    /// too large for memory are passed through).
    pub disk_bytes: u64,
    /// Milliseconds a live playlist (`.m3u8`) is served from the cache
    /// before it is fetched again.
    pub playlist_ttl_ms: u64,
    /// Seconds a VOD file is served without asking the upstream; after
    /// that the next request revalidates it (`If-None-Match`). 0 = every
    /// request revalidates.
    pub revalidate_secs: u64,
}

/// How edges of one pool divide the work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BalancingConfig {
    /// `service`, `clustered` or `redirect`.
    pub mode: BalancingMode,
    /// Peer edges as `HOST:PORT` (static list).
    pub peers: Vec<String>,
    /// A headless Service name whose addresses are the peers (resolved continually).
    pub peer_service: Option<String>,
    /// The address this edge gives viewers it redirects or peers that fetch from it.
    pub advertise: Option<String>,
}

/// Balancing mode of an edge pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BalancingMode {
    /// Plain Kubernetes Service spreading; every edge pulls on its own.
    #[default]
    Service,
    /// Any edge accepts; the owner of a stream (rendezvous hashing) pulls it, others fetch from it.
    Clustered,
    /// Non-owners redirect viewers to the owner edge.
    Redirect,
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

fn any_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

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

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            idle_timeout_secs: 30,
            failover_secs: 45,
            cache: CacheConfig::default(),
            balancing: BalancingConfig::default(),
            upstream_admin_port: DEFAULT_ADMIN_PORT,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/cache"),
            memory_bytes: 256 * 1024 * 1024,
            disk_bytes: 10 * 1024 * 1024 * 1024,
            playlist_ttl_ms: 1000,
            revalidate_secs: 30,
        }
    }
}

impl Default for BalancingConfig {
    fn default() -> Self {
        Self {
            mode: BalancingMode::Service,
            peers: Vec::new(),
            peer_service: None,
            advertise: None,
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
        if self.role == Role::Origin && self.apps.is_empty() {
            bad(
                "apps",
                "an origin needs at least one live application".into(),
            );
        }
        let mut seen = HashSet::new();
        for (i, app) in self.apps.iter().enumerate() {
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
        if self.hls.segment_duration_secs == 0 || self.hls.segment_duration_secs > 60 {
            bad(
                "hls.segment_duration_secs",
                format!("{} is outside 1..=60", self.hls.segment_duration_secs),
            );
        }
        if !(50..=5000).contains(&self.hls.ll.part_duration_ms) {
            bad(
                "hls.ll.part_duration_ms",
                format!("{} is outside 50..=5000", self.hls.ll.part_duration_ms),
            );
        }
        if self.hls.window == 0 {
            bad("hls.window", "must be at least 1".into());
        }
        let l = &self.limits;
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

/// How media is written to players: RTMP chunks and the write interval.
fn validate_delivery(config: &Config, bad: &mut impl FnMut(&str, String)) {
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

fn validate_admin(config: &Config, bad: &mut impl FnMut(&str, String)) {
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

fn validate_edge(edge: &EdgeConfig, bad: &mut impl FnMut(&str, String)) {
    if edge.upstreams.is_empty() {
        bad(
            "edge.upstreams",
            "an edge needs at least one upstream".into(),
        );
    }
    for (i, up) in edge.upstreams.iter().enumerate() {
        let rest = up
            .strip_prefix("rtmp://")
            .or_else(|| up.strip_prefix("http://"));
        match rest {
            Some(hostport) if !hostport.is_empty() && !hostport.contains('/') => {}
            _ => bad(
                &format!("edge.upstreams[{i}]"),
                format!("{up:?} is not rtmp://HOST[:PORT] or http://HOST[:PORT]"),
            ),
        }
    }
    if edge.upstream_admin_port == 0 {
        bad(
            "edge.upstream_admin_port",
            "must be a port, 1..=65535".into(),
        );
    }
    if edge.idle_timeout_secs == 0 {
        bad("edge.idle_timeout_secs", "must be at least 1".into());
    }
    if edge.cache.memory_bytes == 0 {
        bad("edge.cache.memory_bytes", "must be at least 1".into());
    }
    if edge.cache.playlist_ttl_ms > 60_000 {
        bad(
            "edge.cache.playlist_ttl_ms",
            "at most 60000: live playlists change every segment".into(),
        );
    }
    let b = &edge.balancing;
    if b.mode != BalancingMode::Service && b.peers.is_empty() && b.peer_service.is_none() {
        bad(
            "edge.balancing",
            "clustered and redirect modes need peers or peer_service".into(),
        );
    }
    if b.mode == BalancingMode::Redirect && b.advertise.is_none() {
        bad(
            "edge.balancing.advertise",
            "redirect mode needs the address to send viewers to".into(),
        );
    }
}

fn validate_auth(auth: &AuthConfig, bad: &mut impl FnMut(&str, String)) {
    for (field, hook) in [
        ("auth.publish_webhook", &auth.publish_webhook),
        ("auth.play_webhook", &auth.play_webhook),
    ] {
        if let Some(hook) = hook {
            validate_webhook(field, hook, bad);
        }
    }
}

fn validate_webhook(field: &str, hook: &WebhookConfig, bad: &mut impl FnMut(&str, String)) {
    if let Err(why) = crate::auth::webhook::Webhook::new(hook) {
        bad(&format!("{field}.url"), why);
    }
    if !(1..=60_000).contains(&hook.timeout_ms) {
        bad(
            &format!("{field}.timeout_ms"),
            format!("{} is outside 1..=60000", hook.timeout_ms),
        );
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
        let text = include_str!("../fleetcast-media.yaml");
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
    fn disk_bytes_zero_means_no_disk_tier_and_is_valid() {
        let c = Config::from_yaml_str(
            "role: edge\nedge: { upstreams: [\"http://o:8080\"], cache: { disk_bytes: 0 } }\n",
        )
        .unwrap();
        assert_eq!(c.edge.as_ref().unwrap().cache.disk_bytes, 0);
        c.validate().unwrap();
        let zero_memory = Config::from_yaml_str(
            "role: edge\nedge: { upstreams: [\"http://o:8080\"], cache: { memory_bytes: 0 } }\n",
        )
        .unwrap();
        let err = zero_memory.validate().unwrap_err().to_string();
        assert!(err.contains("edge.cache.memory_bytes"), "{err}");
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
