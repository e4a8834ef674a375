//! The command line: `fleetcast-media origin --rtmp ADDR --http ADDR --data DIR`
//! for quick use, `fleetcast-media --config FILE` for the operator's YAML.
//! Both end as one [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{AdminConfig, Config, ConfigError, EdgeConfig, HttpConfig, Role, RtmpConfig};

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
        /// Public HTTP listen address (HTTP-FLV, HLS, VOD, health).
        #[arg(long, default_value = "0.0.0.0:8080")]
        http: SocketAddr,
        /// Admin HTTP listen address (`/api/*`, `/metrics`, health).
        #[arg(long, default_value = "0.0.0.0:8081")]
        admin: SocketAddr,
        /// Data directory: VOD files under DIR/vod, recordings under DIR/recordings.
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
    /// Pull streams from upstream servers on demand and cache media files.
    Edge {
        /// RTMP listen address.
        #[arg(long, default_value = "0.0.0.0:1935")]
        rtmp: SocketAddr,
        /// Public HTTP listen address.
        #[arg(long, default_value = "0.0.0.0:8080")]
        http: SocketAddr,
        /// Admin HTTP listen address (`/api/*`, `/metrics`, health).
        #[arg(long, default_value = "0.0.0.0:8081")]
        admin: SocketAddr,
        /// Upstreams, comma separated: rtmp://HOST:PORT or http://HOST:PORT.
        #[arg(long, value_delimiter = ',')]
        upstream: Vec<String>,
        /// Directory for the on-disk cache tier.
        #[arg(long, default_value = "cache")]
        cache_dir: PathBuf,
    },
    /// Not a role: print URL signed for playback (`auth.play_signing_secret_file`).
    SignUrl(SignUrlArgs),
}

/// `sign-url`: `?expires=&token=` appended to a playback URL.
#[derive(Debug, Clone, clap::Args)]
pub struct SignUrlArgs {
    /// The signing secret file (its first line signs).
    #[arg(long)]
    pub secret_file: PathBuf,
    /// Seconds from now until the URL expires.
    #[arg(long)]
    pub ttl_secs: u64,
    /// Bind the URL to this viewer address (servers with `play_signing_bind_addr`).
    #[arg(long)]
    pub client_ip: Option<std::net::IpAddr>,
    /// `rtmp://HOST/APP/NAME`, `http://HOST/APP/NAME.flv`,
    /// `http://HOST/APP/NAME/index.m3u8` or `http://HOST/vod/FILE`.
    pub url: String,
}

/// Why `sign-url` failed.
#[derive(Debug, thiserror::Error)]
pub enum SignUrlError {
    /// The secret file could not be read or is empty.
    #[error("secret file {path}: {why}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The URL is not a playback URL.
    #[error("{0}")]
    Url(String),
}

impl SignUrlArgs {
    /// The signed URL, expiring `ttl_secs` after `now` (Unix seconds).
    pub fn sign(&self, now: u64) -> Result<String, SignUrlError> {
        let secrets = crate::auth::reload::load_lines(&self.secret_file).map_err(|why| {
            SignUrlError::Secret {
                path: self.secret_file.clone(),
                why,
            }
        })?;
        let first = secrets.first().map(String::as_bytes).unwrap_or_default();
        crate::auth::signing::sign_url(
            first,
            &self.url,
            now.saturating_add(self.ttl_secs),
            self.client_ip,
        )
        .map_err(SignUrlError::Url)
    }
}

impl Cli {
    /// The validated configuration these arguments describe: the file, or the
    /// role's flags over the defaults (an origin when nothing is given).
    pub fn into_config(self) -> Result<Config, ConfigError> {
        if let Some(path) = self.config {
            return Config::load(&path);
        }
        if let Some(RoleArgs::SignUrl(_)) = self.role {
            return Err(ConfigError::Invalid(vec![
                "sign-url is a command, not a role: use Cli::sign_url".into(),
            ]));
        }
        let role = self.role.unwrap_or(RoleArgs::Origin {
            rtmp: SocketAddr::from(([0, 0, 0, 0], crate::config::DEFAULT_RTMP_PORT)),
            http: SocketAddr::from(([0, 0, 0, 0], crate::config::DEFAULT_HTTP_PORT)),
            admin: SocketAddr::from(([0, 0, 0, 0], crate::config::DEFAULT_ADMIN_PORT)),
            data: PathBuf::from("data"),
        });
        let config = match role {
            RoleArgs::Origin {
                rtmp,
                http,
                admin,
                data,
            } => Config {
                role: Role::Origin,
                rtmp: RtmpConfig {
                    listen: rtmp,
                    ..RtmpConfig::default()
                },
                http: HttpConfig { listen: http },
                admin: admin_at(admin),
                data_dir: data,
                ..Config::default()
            },
            RoleArgs::SignUrl(_) => Config::default(),
            RoleArgs::Edge {
                rtmp,
                http,
                admin,
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
                    admin: admin_at(admin),
                    edge: Some(edge),
                    ..Config::default()
                }
            }
        };
        config.validate()?;
        Ok(config)
    }
}

impl Cli {
    /// The `sign-url` arguments, when that is the command.
    pub fn sign_url(&self) -> Option<&SignUrlArgs> {
        match &self.role {
            Some(RoleArgs::SignUrl(args)) => Some(args),
            _ => None,
        }
    }
}

fn admin_at(listen: SocketAddr) -> AdminConfig {
    AdminConfig {
        listen,
        ..AdminConfig::default()
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
        assert_eq!(c.admin.listen.port(), 8081);
        assert_eq!(c.data_dir, PathBuf::from("d"));
    }

    #[test]
    fn sign_url_signs_with_the_first_secret() {
        let dir = std::env::temp_dir().join(format!("fc-cli-sign-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "first\nsecond\n").unwrap();
        let cli = Cli::try_parse_from([
            "fleetcast-media",
            "sign-url",
            "--secret-file",
            secret.to_str().unwrap(),
            "--ttl-secs",
            "60",
            "http://h:8080/live/cam.flv",
        ])
        .unwrap();
        let url = cli.sign_url().unwrap().sign(1000).unwrap();
        let token = crate::auth::signing::token(
            b"first",
            "live/cam",
            1060,
            crate::auth::signing::Binding::None,
        );
        assert_eq!(
            url,
            format!("http://h:8080/live/cam.flv?expires=1060&token={token}")
        );
        assert!(cli.into_config().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn admin_flag_sets_the_admin_listener() {
        for role in ["origin", "edge"] {
            let mut args = vec!["fleetcast-media", role, "--admin", "127.0.0.1:9091"];
            if role == "edge" {
                args.extend(["--upstream", "rtmp://127.0.0.1:1935"]);
            }
            let c = Cli::try_parse_from(args).unwrap().into_config().unwrap();
            assert_eq!(c.admin.listen, "127.0.0.1:9091".parse().unwrap(), "{role}");
        }
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
