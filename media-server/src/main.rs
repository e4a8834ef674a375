use anyhow::Context;
use clap::Parser;
use fleetcast_media::cli::Cli;

fn main() -> anyhow::Result<()> {
    let config = Cli::parse().into_config().context("configuration")?;
    let _ = config;
    anyhow::bail!("the media server roles are not built yet in this version of fleetcast-media")
}
