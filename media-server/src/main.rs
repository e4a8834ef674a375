use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Fleetcast media server: RTMP ingest and playback, HTTP-FLV, HLS and VOD.
/// One binary, two roles: `origin` takes publishers and holds files, `edge`
/// pulls each stream from its upstream once and caches media for viewers.
#[derive(Parser)]
#[command(name = "fleetcast-media", version, about, long_about = None)]
struct Cli {
    /// Read the whole configuration from this YAML file (the format the operator renders).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    role: Option<Role>,
}

#[derive(Subcommand)]
enum Role {
    /// Accept publishers, serve live streams, VOD files and recordings.
    Origin {
        /// RTMP listen address.
        #[arg(long, default_value = "0.0.0.0:1935")]
        rtmp: SocketAddr,
        /// HTTP listen address (HTTP-FLV, HLS, VOD, API).
        #[arg(long, default_value = "0.0.0.0:8080")]
        http: SocketAddr,
        /// Data directory: VOD files under DIR/vod, recordings under DIR.
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = (cli.config, cli.role);
    anyhow::bail!("the media server roles are not built yet in this version of fleetcast-media")
}
