use anyhow::Context;
use clap::Parser;
use fleetcast_media::cli::Cli;
use fleetcast_media::config::{Config, LogFormat, Role};
use fleetcast_media::server::{self, AppState};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(args) = cli.sign_url() {
        let url = args
            .sign(fleetcast_media::auth::unix_now())
            .context("sign-url")?;
        println!("{url}");
        return Ok(());
    }
    let config = cli.into_config().context("configuration")?;
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        if config.role == Role::Edge {
            tracing::info!(
                upstreams = ?config.edge.as_ref().map(|e| &e.upstreams),
                "edge: live streams are pulled from upstreams on demand"
            );
        }
        // Edges keep no files of their own there (VOD comes through the cache).
        if config.role == Role::Origin {
            for dir in [config.vod_dir(), config.recordings_dir()] {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
        }
        let listeners = server::bind(&config).await.with_context(|| {
            format!(
                "binding RTMP {}, HTTP {} and admin {}",
                config.rtmp.listen, config.http.listen, config.admin.listen
            )
        })?;
        let shutdown = CancellationToken::new();
        let state = AppState::new(config, shutdown.clone());
        let (drain, period) = (
            state.drain.clone(),
            std::time::Duration::from_secs(state.config.drain.period_secs),
        );
        tokio::spawn(async move {
            server::termination_signal().await;
            // Leave the Services first, keep serving for the drain period.
            fleetcast_media::drain::leave(&drain, period, server::termination_signal()).await;
            shutdown.cancel();
        });
        server::run(listeners, state).await.context("serving")
    })
}
