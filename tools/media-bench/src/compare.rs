//! `compare`: the same load against nginx-rtmp and the Fleetcast origin in
//! one run, A B A B, and a table of medians over rounds with ratios
//! (Fleetcast / nginx). Servers, publishers and viewers all on loopback.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use tokio::time::Instant;

use crate::procstat::{self, Usage};
use crate::relay;
use crate::run::{self, PlayOptions};
use crate::servers::{self, Server};
use crate::stats::median;
use crate::target::Target;

/// Server and protocol a row measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    /// nginx + Debian's RTMP module, RTMP viewers.
    NginxRtmp,
    /// Fleetcast origin, RTMP viewers.
    FleetcastRtmp,
    /// Fleetcast origin, HTTP-FLV viewers.
    FleetcastFlv,
}

impl Peer {
    /// The row label.
    pub fn label(self) -> &'static str {
        match self {
            Peer::NginxRtmp => "nginx-rtmp",
            Peer::FleetcastRtmp => "fleetcast rtmp",
            Peer::FleetcastFlv => "fleetcast http-flv",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Peer::NginxRtmp => "nginx-rtmp",
            Peer::FleetcastRtmp => "fleetcast-rtmp",
            Peer::FleetcastFlv => "fleetcast-flv",
        }
    }

    fn is_fleetcast(self) -> bool {
        self != Peer::NginxRtmp
    }
}

/// How to run the comparison.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// The FLV file every publisher sends.
    pub file: PathBuf,
    /// nginx binary.
    pub nginx: String,
    /// nginx config template.
    pub nginx_conf: PathBuf,
    /// fleetcast-media binary.
    pub fleetcast: String,
    /// ffmpeg binary.
    pub ffmpeg: String,
    /// Which peers to measure, in the order of each round.
    pub peers: Vec<Peer>,
    /// Viewer counts.
    pub viewers: Vec<usize>,
    /// Rounds per viewer count.
    pub rounds: usize,
    /// Seconds of each viewer run (ramp included).
    pub duration: Duration,
    /// Viewer start ramp.
    pub ramp: Duration,
    /// Wait after publishing before viewers connect.
    pub settle: Duration,
    /// Directory for server prefixes and logs.
    pub work_dir: PathBuf,
    /// Progress lines during each run.
    pub progress: Option<Duration>,
}

/// One measured run: one peer, one viewer count, one round.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// What was measured.
    pub peer: Peer,
    /// Viewers asked for.
    pub viewers: usize,
    /// Round number from 1.
    pub round: usize,
    /// Viewers that received video to the end.
    pub ok: usize,
    /// Viewers that failed, by reason.
    pub failures: BTreeMap<String, usize>,
    /// Server CPU seconds (user + system, process and children) during the viewer run.
    pub server_cpu_s: f64,
    /// The machine's 1-minute load average when the viewers started.
    pub load_average: Option<f64>,
    /// CPU seconds of this tool during the viewer run.
    pub bench_cpu_s: f64,
    /// Bytes viewers read.
    pub bytes: u64,
    /// Server CPU seconds per Gbit delivered.
    pub cpu_s_per_gbit: Option<f64>,
    /// Server RSS before viewers connected, KiB.
    pub rss_before_kib: u64,
    /// Highest server RSS while viewers were connected, KiB.
    pub rss_peak_kib: u64,
    /// (peak − before) / viewers, KiB.
    pub rss_per_viewer_kib: f64,
    /// Publisher's first byte to a waiting viewer's first keyframe, ms.
    pub publish_to_first_frame_ms: Option<f64>,
    /// Median viewer connect-to-first-keyframe on the running stream, ms.
    pub join_ms: Option<f64>,
    /// Median per-viewer bitrate, kbit/s.
    pub bitrate_kbps: Option<f64>,
    /// 95th percentile of per-viewer wall lag at the end, ms.
    pub wall_lag_p95_ms: Option<f64>,
}

/// Medians over rounds for one peer and viewer count, with ratios to nginx.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// What was measured.
    pub peer: Peer,
    /// Viewers asked for.
    pub viewers: usize,
    /// Rounds measured.
    pub rounds: usize,
    /// Median viewers ok.
    pub ok: Option<f64>,
    /// Median server CPU-seconds per Gbit.
    pub cpu_s_per_gbit: Option<f64>,
    /// Median RSS per viewer, KiB.
    pub rss_per_viewer_kib: Option<f64>,
    /// Median publish-to-first-frame, ms.
    pub publish_to_first_frame_ms: Option<f64>,
    /// Median join time, ms.
    pub join_ms: Option<f64>,
    /// Median per-viewer bitrate, kbit/s.
    pub bitrate_kbps: Option<f64>,
    /// Median aggregate delivered, Gbit/s.
    pub delivered_gbps: Option<f64>,
    /// Ratios to nginx-rtmp at the same viewer count: CPU per Gbit, RSS per
    /// viewer, publish-to-first-frame, join.
    pub ratio_cpu: Option<f64>,
    /// RSS per viewer / nginx's.
    pub ratio_rss: Option<f64>,
    /// Publish-to-first-frame / nginx's.
    pub ratio_first_frame: Option<f64>,
    /// Join time / nginx's.
    pub ratio_join: Option<f64>,
}

/// Medians over rounds per (peer, viewers), with ratios to nginx-rtmp.
pub fn summarize(results: &[RunResult], duration_s: f64) -> Vec<Summary> {
    let mut groups: BTreeMap<(usize, Peer), Vec<&RunResult>> = BTreeMap::new();
    for r in results {
        groups.entry((r.viewers, r.peer)).or_default().push(r);
    }
    let mut rows: Vec<Summary> = groups
        .iter()
        .map(|(&(viewers, peer), runs)| {
            #[allow(clippy::cast_precision_loss)] // counts far below 2^52
            let delivered = median(runs.iter().map(|r| r.bytes as f64 * 8.0 / 1e9 / duration_s));
            #[allow(clippy::cast_precision_loss)]
            let ok = median(runs.iter().map(|r| r.ok as f64));
            Summary {
                peer,
                viewers,
                rounds: runs.len(),
                ok,
                cpu_s_per_gbit: median(runs.iter().filter_map(|r| r.cpu_s_per_gbit)),
                rss_per_viewer_kib: median(runs.iter().map(|r| r.rss_per_viewer_kib)),
                publish_to_first_frame_ms: median(
                    runs.iter().filter_map(|r| r.publish_to_first_frame_ms),
                ),
                join_ms: median(runs.iter().filter_map(|r| r.join_ms)),
                bitrate_kbps: median(runs.iter().filter_map(|r| r.bitrate_kbps)),
                delivered_gbps: delivered,
                ratio_cpu: None,
                ratio_rss: None,
                ratio_first_frame: None,
                ratio_join: None,
            }
        })
        .collect();
    let nginx: BTreeMap<usize, Summary> = rows
        .iter()
        .filter(|s| s.peer == Peer::NginxRtmp)
        .map(|s| (s.viewers, s.clone()))
        .collect();
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    for row in &mut rows {
        if let Some(n) = nginx.get(&row.viewers).filter(|_| row.peer.is_fleetcast()) {
            row.ratio_cpu = ratio(row.cpu_s_per_gbit, n.cpu_s_per_gbit);
            row.ratio_rss = ratio(row.rss_per_viewer_kib, n.rss_per_viewer_kib);
            row.ratio_first_frame =
                ratio(row.publish_to_first_frame_ms, n.publish_to_first_frame_ms);
            row.ratio_join = ratio(row.join_ms, n.join_ms);
        }
    }
    rows
}

fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.decimals$}"))
}

fn ratio_cell(v: Option<f64>) -> String {
    match v {
        None => String::new(),
        Some(x) if x < 0.1 => format!(" ({x:.3}x)"),
        Some(x) => format!(" ({x:.2}x)"),
    }
}

/// The summary as a Markdown table.
pub fn table(rows: &[Summary]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "| viewers | server | ok | Gbit/s | CPU-s per Gbit | RSS KiB per viewer | publish to first frame ms | join ms | kbit/s per viewer |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {}{} | {}{} | {}{} | {}{} | {} |",
            r.viewers,
            r.peer.label(),
            cell(r.ok, 0),
            cell(r.delivered_gbps, 3),
            cell(r.cpu_s_per_gbit, 3),
            ratio_cell(r.ratio_cpu),
            cell(r.rss_per_viewer_kib, 1),
            ratio_cell(r.ratio_rss),
            cell(r.publish_to_first_frame_ms, 0),
            ratio_cell(r.ratio_first_frame),
            cell(r.join_ms, 0),
            ratio_cell(r.ratio_join),
            cell(r.bitrate_kbps, 0),
        );
    }
    out
}

/// Runs every round and returns each run's figures.
pub async fn compare(opts: &CompareOptions) -> Result<Vec<RunResult>> {
    if !opts.file.is_file() {
        bail!("media file {} not found", opts.file.display());
    }
    std::fs::create_dir_all(&opts.work_dir)
        .with_context(|| format!("create {}", opts.work_dir.display()))?;
    eprintln!("servers' directories and logs: {}", opts.work_dir.display());
    let ticks = procstat::clock_ticks();
    let mut results = Vec::new();
    for &viewers in &opts.viewers {
        for round in 1..=opts.rounds {
            for &peer in &opts.peers {
                eprintln!(
                    "== {} viewers, round {round}/{}, {}",
                    viewers,
                    opts.rounds,
                    peer.label()
                );
                // A fresh server per run: memory a previous run left
                // allocated would hide this run's growth.
                let dir = opts
                    .work_dir
                    .join(format!("{}-{viewers}-{round}", peer.slug()));
                let mut server = match peer {
                    Peer::NginxRtmp => {
                        servers::start_nginx(&opts.nginx, &opts.nginx_conf, &dir).await?
                    }
                    _ => servers::start_fleetcast(&opts.fleetcast, &dir)
                        .await
                        .context("the Fleetcast origin is needed for the fleetcast rows")?,
                };
                let r = measure(opts, &mut server, peer, viewers, round, ticks).await;
                server.proc.stop();
                let r = r?;
                eprintln!(
                    "   ok {}/{}  cpu {:.2} s (bench {:.2} s)  {:.3} s/Gbit  rss {:.1} KiB/viewer  first frame {} ms  join {} ms  {} kbit/s  lag p95 {} ms  load {}",
                    r.ok,
                    viewers,
                    r.server_cpu_s,
                    r.bench_cpu_s,
                    r.cpu_s_per_gbit.unwrap_or(f64::NAN),
                    r.rss_per_viewer_kib,
                    cell(r.publish_to_first_frame_ms, 0),
                    cell(r.join_ms, 0),
                    cell(r.bitrate_kbps, 0),
                    cell(r.wall_lag_p95_ms, 0),
                    cell(r.load_average, 1),
                );
                for (reason, n) in &r.failures {
                    eprintln!("   failed: {n} x {reason}");
                }
                results.push(r);
            }
        }
    }
    Ok(results)
}

#[allow(clippy::cast_precision_loss)] // ticks, bytes and KiB far below 2^52
async fn measure(
    opts: &CompareOptions,
    server: &mut Server,
    peer: Peer,
    viewers: usize,
    round: usize,
    ticks: u64,
) -> Result<RunResult> {
    let pid = server.proc.pid();
    let rtmp_url = format!("rtmp://127.0.0.1:{}/live/bench", server.rtmp_port);
    let play_url = match peer {
        Peer::FleetcastFlv => format!(
            "http://127.0.0.1:{}/live/bench.flv",
            server.http_port.unwrap_or(server.rtmp_port)
        ),
        _ => rtmp_url,
    };
    let target = Target::parse(&play_url)?;
    let log = opts
        .work_dir
        .join(format!("{}-{viewers}-{round}", peer.slug()))
        .join("publisher.log");
    let (_relay, mut publisher, first_frame) =
        publish_and_probe(opts, server, &target, &log).await?;
    tokio::time::sleep(opts.settle).await;
    publisher.check_alive()?;
    server.proc.check_alive()?;

    let load = procstat::load_average();
    let before = procstat::usage_with_children(pid)?;
    let bench_before = procstat::usage_with_children(std::process::id())?;
    let peak = Arc::new(AtomicU64::new(before.rss_kib));
    let sampler = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                if let Ok(Usage { rss_kib, .. }) = procstat::usage_with_children(pid) {
                    peak.fetch_max(rss_kib, Ordering::Relaxed);
                }
            }
        })
    };
    let play = PlayOptions {
        url: play_url,
        target,
        viewers,
        duration: opts.duration,
        ramp: opts.ramp,
        progress: opts.progress,
        per_viewer: false,
        reconnect: run::ReconnectOptions::default(),
        stall: None,
        // Ctrl-C keeps stopping the whole comparison.
        stop_on_signal: false,
    };
    let report = run::run(&play).await;
    let after = procstat::usage_with_children(pid)?;
    let bench_after = procstat::usage_with_children(std::process::id())?;
    sampler.abort();
    publisher.stop();
    let report = report?;
    server.proc.check_alive()?;

    let cpu_s = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / ticks as f64;
    let gbit = report.total_bytes as f64 * 8.0 / 1e9;
    let rss_peak = peak.load(Ordering::Relaxed).max(after.rss_kib);
    Ok(RunResult {
        peer,
        viewers,
        round,
        ok: report.ok,
        failures: report.failures.clone(),
        server_cpu_s: cpu_s,
        load_average: load,
        bench_cpu_s: bench_after.cpu_ticks.saturating_sub(bench_before.cpu_ticks) as f64
            / ticks as f64,
        bytes: report.total_bytes,
        cpu_s_per_gbit: (gbit > 0.0).then(|| cpu_s / gbit),
        rss_before_kib: before.rss_kib,
        rss_peak_kib: rss_peak,
        rss_per_viewer_kib: rss_peak.saturating_sub(before.rss_kib) as f64 / viewers as f64,
        publish_to_first_frame_ms: first_frame,
        join_ms: report.first_keyframe_ms.map(|d| d.median),
        bitrate_kbps: report.bitrate_kbps.map(|d| d.median),
        wall_lag_p95_ms: report.wall_lag_ms.map(|d| d.p95),
    })
}

/// Starts the publisher behind a relay with a viewer already waiting; returns
/// the relay (it carries the publisher's traffic), the publisher, and the
/// publisher's-first-byte-to-first-keyframe time in ms.
async fn publish_and_probe(
    opts: &CompareOptions,
    server: &Server,
    target: &Target,
    log: &std::path::Path,
) -> Result<(relay::Relay, servers::Proc, Option<f64>)> {
    // A viewer already waiting (retrying) when the publisher starts; the
    // publisher goes through a relay that notes its first byte, so the
    // figure starts when the publisher talks, not when ffmpeg is launched.
    let mut relay = relay::start(SocketAddr::from(([127, 0, 0, 1], server.rtmp_port))).await?;
    let publish_url = format!("rtmp://{}/live/bench", relay.addr);
    let t0 = Instant::now();
    let probe = {
        let target = target.clone();
        tokio::spawn(async move {
            run::first_frame(
                &target,
                t0,
                Duration::from_secs(10),
                Duration::from_millis(10),
            )
            .await
        })
    };
    let publisher = servers::start_publisher(&opts.ffmpeg, &opts.file, &publish_url, log)?;
    let first_frame = match probe.await {
        Ok(Ok(d)) => {
            let shown = t0 + d;
            match tokio::time::timeout(Duration::from_secs(1), &mut relay.first_byte).await {
                Ok(Ok(first_byte)) => {
                    Some(shown.saturating_duration_since(first_byte).as_secs_f64() * 1000.0)
                }
                _ => None,
            }
        }
        Ok(Err(e)) => {
            eprintln!("   publish-to-first-frame probe failed: {e:#}");
            None
        }
        Err(e) => bail!("probe task: {e}"),
    };
    Ok((relay, publisher, first_frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(peer: Peer, viewers: usize, round: usize, cpu_per_gbit: f64, rss: f64) -> RunResult {
        RunResult {
            peer,
            viewers,
            round,
            ok: viewers,
            failures: BTreeMap::new(),
            server_cpu_s: 1.0,
            load_average: None,
            bench_cpu_s: 1.0,
            bytes: 1_250_000_000,
            cpu_s_per_gbit: Some(cpu_per_gbit),
            rss_before_kib: 1000,
            rss_peak_kib: 2000,
            rss_per_viewer_kib: rss,
            publish_to_first_frame_ms: Some(300.0),
            join_ms: Some(if peer == Peer::NginxRtmp {
                1000.0
            } else {
                10.0
            }),
            bitrate_kbps: Some(1100.0),
            wall_lag_p95_ms: Some(0.0),
        }
    }

    #[test]
    fn medians_over_rounds_and_ratios_to_nginx() {
        let results = vec![
            run(Peer::NginxRtmp, 100, 1, 0.8, 10.0),
            run(Peer::FleetcastRtmp, 100, 1, 0.2, 4.0),
            run(Peer::NginxRtmp, 100, 2, 1.0, 12.0),
            run(Peer::FleetcastRtmp, 100, 2, 0.9, 5.0),
            run(Peer::NginxRtmp, 100, 3, 0.9, 11.0),
            run(Peer::FleetcastRtmp, 100, 3, 0.3, 6.0),
            run(Peer::FleetcastFlv, 200, 1, 0.3, 6.0),
        ];
        let rows = summarize(&results, 10.0);
        assert_eq!(rows.len(), 3);
        let nginx = rows.iter().find(|r| r.peer == Peer::NginxRtmp).unwrap();
        assert!((nginx.cpu_s_per_gbit.unwrap() - 0.9).abs() < 1e-9);
        assert!(nginx.ratio_cpu.is_none());
        assert!((nginx.delivered_gbps.unwrap() - 1.0).abs() < 1e-9);
        let ours = rows.iter().find(|r| r.peer == Peer::FleetcastRtmp).unwrap();
        assert_eq!(ours.rounds, 3);
        assert!((ours.ratio_cpu.unwrap() - 0.3 / 0.9).abs() < 1e-9);
        assert!((ours.ratio_rss.unwrap() - 5.0 / 11.0).abs() < 1e-9);
        assert!((ours.ratio_join.unwrap() - 0.01).abs() < 1e-9);
        // No nginx row at 200 viewers: no ratio.
        let flv = rows.iter().find(|r| r.peer == Peer::FleetcastFlv).unwrap();
        assert!(flv.ratio_cpu.is_none());
        let text = table(&rows);
        assert!(
            text.contains("| 100 | fleetcast rtmp | 100 | 1.000 | 0.300 (0.33x) |"),
            "{text}"
        );
    }
}
