//! The media server's config for each component, built from the media
//! server's own serde types (`fleetcast_media::config`) so the file the
//! operator writes is always one the server reads.

use std::path::PathBuf;

use fleetcast_media::config::{
    BalancingConfig, BalancingMode as MediaBalancing, CacheConfig, Config, EdgeConfig, LogConfig,
    LogFormat, Role,
};
use sha2::{Digest, Sha256};

use super::names;
use super::quantity;
use crate::crd::MediaCluster;
use crate::crd::v1alpha1::{BalancingMode, EdgePool, ORIGIN_UPSTREAM};

/// Container ports every media-server pod listens on.
pub const RTMP_PORT: u16 = fleetcast_media::config::DEFAULT_RTMP_PORT;
/// HTTP (public): HLS, HTTP-FLV, VOD, `/healthz`, `/readyz`; `/api/*` and
/// `/metrics` are on [`super::admin::ADMIN_PORT`].
pub const HTTP_PORT: u16 = fleetcast_media::config::DEFAULT_HTTP_PORT;
/// Where origins keep VOD files and recordings.
pub const DATA_DIR: &str = "/data";
/// Where edges keep the disk tier of their cache.
pub const CACHE_DIR: &str = "/cache";

/// A rendered config and the hash that goes on the pod template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The YAML file.
    pub yaml: String,
    /// Hex SHA-256 prefix of `yaml`; changes exactly when the file changes.
    pub hash: String,
}

/// Why a config could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A cache size is not a byte quantity.
    #[error(
        "edge pool {pool:?}: cache.{field} {value:?} is not a byte quantity like 256Mi or 10Gi"
    )]
    Quantity {
        /// The pool.
        pool: String,
        /// `memory` or `disk`.
        field: &'static str,
        /// What the spec says.
        value: String,
    },
    /// The media server would refuse the config.
    #[error("{component}: the media server would refuse its config: {source}")]
    Invalid {
        /// `origin` or `edge pool NAME`.
        component: String,
        /// What the media server's validation says.
        source: fleetcast_media::config::ConfigError,
    },
    /// Serialization failed.
    #[error("rendering media config: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

fn base(role: Role, mc: &MediaCluster) -> Config {
    let mut config = Config {
        role,
        data_dir: PathBuf::from(DATA_DIR),
        log: LogConfig {
            format: LogFormat::Json,
            ..LogConfig::default()
        },
        ..Config::default()
    };
    if let Some(ms) = mc.spec.playback.write_interval_ms {
        config.playback.write_interval_ms = u64::from(ms);
    }
    config
}

/// Config of the origins: publish auth reads the token from the Secret
/// mounted by the origin builder; `spec.security` adds keys, webhooks and
/// signed playback (files mounted by the same builder).
pub fn origin(mc: &MediaCluster) -> Result<Rendered, ConfigError> {
    let mut config = base(Role::Origin, mc);
    if mc.spec.origin.publish_auth.is_some() {
        config.auth.publish_token_file =
            Some(PathBuf::from(super::origin::AUTH_DIR).join(super::origin::AUTH_FILE));
    }
    super::security::origin_auth(&mc.spec.security, &mut config.auth);
    config.admin.token_file = super::admin::token_file(&mc.spec.security);
    finish(&config, "origin")
}

/// Config of one edge pool: its upstream, cache and balancing.
pub fn edge(mc: &MediaCluster, pool: &EdgePool, namespace: &str) -> Result<Rendered, ConfigError> {
    let mc_name = mc.metadata.name.as_deref().unwrap_or_default();
    let upstreams = upstream_urls(mc, pool, namespace);
    let bytes = |field: &'static str, value: &str| {
        quantity::to_bytes(value).ok_or_else(|| ConfigError::Quantity {
            pool: pool.name.clone(),
            field,
            value: value.to_owned(),
        })
    };
    let mode = mc.spec.balancing.mode;
    let balancing = BalancingConfig {
        mode: match mode {
            BalancingMode::Service => MediaBalancing::Service,
            BalancingMode::Clustered => MediaBalancing::Clustered,
            BalancingMode::Redirect => MediaBalancing::Redirect,
        },
        peers: Vec::new(),
        peer_service: mode
            .needs_peers()
            .then(|| names::service_host(&names::edge_peers(mc_name, &pool.name), namespace)),
        // The ConfigMap is per pool, the address per pod: the server expands the variable.
        advertise: mode
            .needs_peers()
            .then(|| format!("${{POD_IP}}:{HTTP_PORT}")),
    };
    let mut config = base(Role::Edge, mc);
    config.edge = Some(EdgeConfig {
        upstreams,
        cache: CacheConfig {
            dir: PathBuf::from(CACHE_DIR),
            memory_bytes: bytes("memory", &pool.cache.memory)?,
            disk_bytes: cache_disk_bytes(bytes("disk", &pool.cache.disk)?),
            ..CacheConfig::default()
        },
        balancing,
        ..EdgeConfig::default()
    });
    super::security::edge_auth(&mc.spec.security, &mut config.auth);
    config.admin.token_file = super::admin::token_file(&mc.spec.security);
    // On SIGTERM: readiness fails, viewers keep playing this long, then reconnect elsewhere.
    config.drain.period_secs = u64::try_from(pool.drain.seconds).unwrap_or(0);
    finish(&config, &format!("edge pool {}", pool.name))
}

/// The disk tier's bound for a cache volume of `volume` bytes: 80% of it. The
/// server writes a whole fetched object before its bound applies, so the
/// directory can exceed the bound by the objects in flight; the rest of the
/// volume is room for them, below the emptyDir's sizeLimit at which the
/// kubelet evicts the pod.
pub fn cache_disk_bytes(volume: u64) -> u64 {
    volume - volume / 5
}

/// Where a pool pulls from: every origin pod through the headless Service, or
/// the parent pool's Service for tiered pools.
pub fn upstream_urls(mc: &MediaCluster, pool: &EdgePool, namespace: &str) -> Vec<String> {
    let mc_name = mc.metadata.name.as_deref().unwrap_or_default();
    if pool.upstream == ORIGIN_UPSTREAM {
        let host = names::service_host(&names::origin(mc_name), namespace);
        vec![
            format!("rtmp://{host}:{RTMP_PORT}"),
            format!("http://{host}:{HTTP_PORT}"),
        ]
    } else {
        let host = names::service_host(&names::edge(mc_name, &pool.upstream), namespace);
        let ports = mc
            .spec
            .edges
            .iter()
            .find(|p| p.name == pool.upstream)
            .map(|p| p.service.ports.clone())
            .unwrap_or_default();
        vec![
            format!("rtmp://{host}:{}", ports.rtmp),
            format!("http://{host}:{}", ports.http),
        ]
    }
}

fn finish(config: &Config, component: &str) -> Result<Rendered, ConfigError> {
    config.validate().map_err(|source| ConfigError::Invalid {
        component: component.to_owned(),
        source,
    })?;
    Ok(render(config)?)
}

/// The YAML of a config: typed serialization only, so a value from the spec
/// (a URL, a name) is always one quoted scalar, never YAML structure.
pub fn render(config: &Config) -> Result<Rendered, serde_yaml_ng::Error> {
    let yaml = serde_yaml_ng::to_string(config)?;
    let hash = hash(&yaml);
    Ok(Rendered { yaml, hash })
}

/// Hex SHA-256 prefix: stable across builds and Rust releases, unlike std's hasher.
pub fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest
        .iter()
        .take(8)
        .fold(String::with_capacity(16), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        })
}
