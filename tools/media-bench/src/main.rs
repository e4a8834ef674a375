//! `media-bench`: load a media server with N RTMP or HTTP-FLV viewers and
//! report per-viewer bitrate, frames and lag; `compare` runs the same load
//! against Fleetcast and nginx-rtmp side by side and prints ratios.

mod chunked;
mod compare;
mod ending;
mod flv;
mod procstat;
mod relay;
mod run;
mod servers;
mod stats;
mod target;
mod viewer;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::target::Target;

#[derive(Parser)]
#[command(name = "media-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open N viewers on one stream for a fixed time and report what they received.
    Play {
        /// rtmp://HOST:PORT/APP/NAME or http://HOST:PORT/APP/NAME.flv (loopback or --allow-net).
        #[arg(long)]
        url: String,
        #[command(flatten)]
        net: NetArgs,
        /// Number of viewers.
        #[arg(long, default_value_t = 10)]
        viewers: usize,
        /// Whole run length in seconds (ramp included); the run stops by itself.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Spread viewer starts evenly over this many seconds.
        #[arg(long, default_value_t = 0.0)]
        ramp: f64,
        /// Seconds between progress lines on stderr (0: none).
        #[arg(long, default_value_t = 5.0)]
        progress: f64,
        /// Worker threads (1: a current-thread runtime).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Include every viewer's stats (and each of its sessions) in the JSON report.
        #[arg(long)]
        per_viewer: bool,
        /// A viewer told to leave (RTMP end status, end of the HTTP-FLV
        /// response) connects again to the same URL, as players do.
        #[arg(long)]
        reconnect: bool,
        /// Pause before each reconnect, ms.
        #[arg(long, default_value_t = 500)]
        reconnect_delay_ms: u64,
        /// Reconnects per viewer at most (a failed reconnect is retried within this bound).
        #[arg(long, default_value_t = 5)]
        max_reconnects: u32,
        /// Seconds without a byte (while not told the stream ended) after
        /// which a session counts as cut ("stalled"); 0: wait for the run's end.
        #[arg(long, default_value_t = 0.0)]
        stall: f64,
    },
    /// Retry a viewer until it shows its first keyframe; prints the time from start in ms.
    FirstFrame {
        /// Stream URL (loopback or --allow-net).
        #[arg(long)]
        url: String,
        #[command(flatten)]
        net: NetArgs,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Milliseconds between attempts.
        #[arg(long, default_value_t = 20)]
        retry_ms: u64,
    },
    /// Run the same viewer load against nginx-rtmp and the Fleetcast origin
    /// in one run (A B A B), print medians over rounds with ratios.
    Compare {
        /// FLV file the publishers send (H.264/AAC, ~1.1 Mbit/s).
        #[arg(long)]
        file: PathBuf,
        /// Peers to measure, in each round's order.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "nginx-rtmp,fleetcast-rtmp"
        )]
        peers: Vec<compare::Peer>,
        /// Viewer counts.
        #[arg(long, value_delimiter = ',', default_value = "200,500,1000")]
        viewers: Vec<usize>,
        /// Rounds per viewer count.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds of each viewer run, ramp included.
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
        /// Seconds over which viewers connect.
        #[arg(long, default_value_t = 5.0)]
        ramp: f64,
        /// Seconds between publishing and connecting viewers.
        #[arg(long, default_value_t = 3.0)]
        settle: f64,
        /// nginx binary.
        #[arg(long, default_value = "nginx")]
        nginx: String,
        /// nginx config template (`@PREFIX@`, `@RTMP_PORT@`).
        #[arg(long, default_value = "tools/peer/nginx-rtmp.conf")]
        nginx_conf: PathBuf,
        /// fleetcast-media binary.
        #[arg(long, default_value = "target/release/fleetcast-media")]
        fleetcast: String,
        /// ffmpeg binary.
        #[arg(long, default_value = "ffmpeg")]
        ffmpeg: String,
        /// Directory for server prefixes and logs (default: a new one under the temp dir).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Write every run and the summary as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Seconds between progress lines during runs (0: none).
        #[arg(long, default_value_t = 0.0)]
        progress: f64,
    },
}

/// Which addresses besides loopback may be loaded.
#[derive(Args)]
struct NetArgs {
    /// Also accept targets inside this private network (CIDR, e.g. a test
    /// cluster's Service network 10.96.0.0/12); repeatable.
    #[arg(long = "allow-net", value_name = "CIDR")]
    allow_net: Vec<IpNet>,
}

impl NetArgs {
    fn target(&self, url: &str) -> Result<Target> {
        target::check_allowed(&self.allow_net)?;
        Ok(Target::parse_allowing(url, &self.allow_net)?)
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Play {
            url,
            net,
            viewers,
            duration,
            ramp,
            progress,
            threads,
            json,
            per_viewer,
            reconnect,
            reconnect_delay_ms,
            max_reconnects,
            stall,
        } => {
            let target = net.target(&url)?;
            let stall = secs(stall, "--stall")?;
            let opts = run::PlayOptions {
                url,
                target,
                viewers,
                duration: secs(duration, "--duration")?,
                ramp: secs(ramp, "--ramp")?,
                progress: (progress > 0.0).then(|| Duration::from_secs_f64(progress)),
                per_viewer,
                reconnect: run::ReconnectOptions {
                    enabled: reconnect,
                    delay: Duration::from_millis(reconnect_delay_ms),
                    max: max_reconnects,
                },
                stall: (!stall.is_zero()).then_some(stall),
                stop_on_signal: true,
            };
            let report = runtime(threads)?.block_on(run::run(&opts))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.text());
            }
        }
        Command::FirstFrame {
            url,
            net,
            timeout,
            retry_ms,
        } => {
            let target = net.target(&url)?;
            let timeout = secs(timeout, "--timeout")?;
            let took = runtime(1)?.block_on(async {
                let t0 = tokio::time::Instant::now();
                run::first_frame(&target, t0, timeout, Duration::from_millis(retry_ms)).await
            })?;
            println!("{:.1}", took.as_secs_f64() * 1000.0);
        }
        Command::Compare {
            file,
            peers,
            viewers,
            rounds,
            duration,
            ramp,
            settle,
            nginx,
            nginx_conf,
            fleetcast,
            ffmpeg,
            work_dir,
            json,
            progress,
        } => {
            let opts = compare::CompareOptions {
                file,
                nginx,
                nginx_conf,
                fleetcast,
                ffmpeg,
                peers,
                viewers,
                rounds,
                duration: secs(duration, "--duration")?,
                ramp: secs(ramp, "--ramp")?,
                settle: secs(settle, "--settle")?,
                work_dir: work_dir.unwrap_or_else(|| {
                    std::env::temp_dir().join(format!("media-bench-{}", std::process::id()))
                }),
                progress: (progress > 0.0).then(|| Duration::from_secs_f64(progress)),
            };
            let results = runtime(1)?.block_on(compare::compare(&opts))?;
            let summary = compare::summarize(&results, opts.duration.as_secs_f64());
            print!("{}", compare::table(&summary));
            if let Some(path) = json {
                let doc = serde_json::json!({ "runs": results, "summary": summary });
                std::fs::write(&path, serde_json::to_string_pretty(&doc)?)
                    .with_context(|| format!("write {}", path.display()))?;
            }
        }
    }
    Ok(())
}

fn secs(value: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{flag} must be a non-negative number of seconds"))
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build().context("start tokio runtime")
}
