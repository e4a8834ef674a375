//! The command line: `fleetcast-media origin --rtmp ADDR --http ADDR --data DIR`
//! for quick use, `fleetcast-media --config FILE` for the operator's YAML.
//! Both end as one [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, EdgeConfig, HttpConfig, Role, RtmpConfig};

/// Fleetcast media server: RTMP ingest and playback, HTTP-FLV, HLS and VOD.
/// One binary, two roles: `origin` takes publishers and holds files, `edge`
/// pulls each stream from its upstream once and caches media for viewers.
#[derive(Debug, Parser)]
#[command(name = "fleetcast-media", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Read the whole configuration from this YAML file (the format the operator renders).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The role and its quick settings (without --config).
    #[command(subcommand)]
    pub role: Option<RoleArgs>,
}

/// A role with its quick settings.
#[derive(Debug, Subcommand)]
pub enum RoleArgs {
    /// Accept publishers, serve live streams, VOD files and recordings.
    Origin {
        /// RTMP listen address.
        #[arg(long, default_value = "0.0.0.0:1935")]
        rtmp: SocketAddr,
        /// HTTP listen address (HTTP-FLV, HLS, VOD, API).
        #[arg(long, default_value = "0.0.0.0:8080")]
        http: SocketAddr,
        /// Data directory: VOD files under DIR/vod, recordings under DIR/recordings.
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
    /// Pull streams from upstream servers on demand and cache media files.
    Edge {
        /// RTMP listen address.
        #[arg(long, default_value = "0.0.0.0:1935")]
        rtmp: SocketAddr,
        /// HTTP listen address.
        #[arg(long, default_value = "0.0.0.0:8080")]
        http: SocketAddr,
        /// Upstreams, comma separated: rtmp://HOST:PORT or http://HOST:PORT.
        #[arg(long, value_delimiter = ',')]
        upstream: Vec<String>,
        /// Directory for the on-disk cache tier.
        #[arg(long, default_value = "cache")]
        cache_dir: PathBuf,
    },
}

impl Cli {
    /// The validated configuration these arguments describe: the file, or the
    /// role's flags over the defaults (an origin when nothing is given).
    pub fn into_config(self) -> Result<Config, ConfigError> {
        if let Some(path) = self.config {
            return Config::load(&path);
        }
        let role = self.role.unwrap_or(RoleArgs::Origin {
            rtmp: SocketAddr::from(([0, 0, 0, 0], crate::config::DEFAULT_RTMP_PORT)),
            http: SocketAddr::from(([0, 0, 0, 0], crate::config::DEFAULT_HTTP_PORT)),
            data: PathBuf::from("data"),
        });
        let config = match role {
            RoleArgs::Origin { rtmp, http, data } => Config {
                role: Role::Origin,
                rtmp: RtmpConfig {
                    listen: rtmp,
                    ..RtmpConfig::default()
                },
                http: HttpConfig { listen: http },
                data_dir: data,
                ..Config::default()
            },
            RoleArgs::Edge {
                rtmp,
                http,
                upstream,
                cache_dir,
            } => {
                let mut edge = EdgeConfig {
                    upstreams: upstream,
                    ..EdgeConfig::default()
                };
                edge.cache.dir = cache_dir;
                Config {
                    role: Role::Edge,
                    rtmp: RtmpConfig {
                        listen: rtmp,
                        ..RtmpConfig::default()
                    },
                    http: HttpConfig { listen: http },
                    edge: Some(edge),
                    ..Config::default()
                }
            }
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_flags_build_a_config() {
        let cli = Cli::try_parse_from([
            "fleetcast-media",
            "origin",
            "--rtmp",
            "127.0.0.1:1936",
            "--data",
            "d",
        ])
        .unwrap();
        let c = cli.into_config().unwrap();
        assert_eq!(c.role, Role::Origin);
        assert_eq!(c.rtmp.listen.port(), 1936);
        assert_eq!(c.http.listen.port(), 8080);
        assert_eq!(c.data_dir, PathBuf::from("d"));
    }

    #[test]
    fn config_and_role_conflict() {
        assert!(Cli::try_parse_from(["fleetcast-media", "--config", "x.yaml", "origin"]).is_err());
    }

    #[test]
    fn edge_needs_an_upstream() {
        let cli = Cli::try_parse_from(["fleetcast-media", "edge"]).unwrap();
        assert!(cli.into_config().is_err());
    }
}
