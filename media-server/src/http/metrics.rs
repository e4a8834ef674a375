//! Prometheus text exposition of the hub's counters. Written by hand: a
//! dozen families of plain atomics need no metrics library.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::hub::{Metrics, PerProtocol, Protocol, StreamInfo};

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn by_protocol(out: &mut String, name: &str, values: &PerProtocol) {
    for p in Protocol::VIEWER {
        let _ = writeln!(
            out,
            "{name}{{protocol=\"{}\"}} {}",
            p.as_str(),
            values.get(p)
        );
    }
}

/// Renders every metric family.
#[allow(clippy::too_many_lines)]
pub fn render(m: &Metrics, streams: &[StreamInfo]) -> String {
    let mut out = String::with_capacity(4096);
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);

    family(
        &mut out,
        "fleetcast_media_connections",
        "gauge",
        "Open connections by protocol.",
    );
    let _ = writeln!(
        out,
        "fleetcast_media_connections{{protocol=\"rtmp\"}} {}",
        load(&m.rtmp_connections)
    );
    let _ = writeln!(
        out,
        "fleetcast_media_connections{{protocol=\"http\"}} {}",
        load(&m.http_connections)
    );
    family(
        &mut out,
        "fleetcast_media_connections_accepted_total",
        "counter",
        "Connections accepted since start by protocol.",
    );
    let _ = writeln!(
        out,
        "fleetcast_media_connections_accepted_total{{protocol=\"rtmp\"}} {}",
        load(&m.rtmp_connections_total)
    );
    let _ = writeln!(
        out,
        "fleetcast_media_connections_accepted_total{{protocol=\"http\"}} {}",
        load(&m.http_connections_total)
    );
    family(
        &mut out,
        "fleetcast_media_connections_rejected_total",
        "counter",
        "Connections closed for malformed input or protocol errors.",
    );
    let _ = writeln!(
        out,
        "fleetcast_media_connections_rejected_total {}",
        load(&m.connections_rejected)
    );

    family(
        &mut out,
        "fleetcast_media_streams",
        "gauge",
        "Live streams (with a publisher).",
    );
    let _ = writeln!(out, "fleetcast_media_streams {}", streams.len());
    family(
        &mut out,
        "fleetcast_media_viewers",
        "gauge",
        "Playback sessions by protocol (HLS: sessions seen recently).",
    );
    for p in Protocol::VIEWER {
        let n: u64 = streams
            .iter()
            .map(|s| s.viewers_by_protocol.get(p.as_str()).copied().unwrap_or(0))
            .sum();
        let _ = writeln!(
            out,
            "fleetcast_media_viewers{{protocol=\"{}\"}} {n}",
            p.as_str()
        );
    }

    family(
        &mut out,
        "fleetcast_media_bytes_in_total",
        "counter",
        "Media bytes received from publishers.",
    );
    let _ = writeln!(out, "fleetcast_media_bytes_in_total {}", load(&m.bytes_in));
    family(
        &mut out,
        "fleetcast_media_bytes_out_total",
        "counter",
        "Bytes sent to viewers by protocol.",
    );
    by_protocol(&mut out, "fleetcast_media_bytes_out_total", &m.bytes_out);
    family(
        &mut out,
        "fleetcast_media_dropped_frames_total",
        "counter",
        "Frames skipped by viewers that fell behind, by protocol.",
    );
    by_protocol(
        &mut out,
        "fleetcast_media_dropped_frames_total",
        &m.dropped_frames,
    );
    family(
        &mut out,
        "fleetcast_media_slow_viewers_dropped_total",
        "counter",
        "Viewers disconnected for falling behind repeatedly, by protocol.",
    );
    by_protocol(
        &mut out,
        "fleetcast_media_slow_viewers_dropped_total",
        &m.slow_viewers_dropped,
    );
    m.publish_refused_by.render(
        &mut out,
        "fleetcast_media_publish_refused_total",
        "Publish attempts refused, by reason.",
        crate::auth::reason::PUBLISH_REASONS,
    );
    m.play_refused.render(
        &mut out,
        "fleetcast_media_play_refused_total",
        "Plays refused by authorization, by reason.",
        crate::auth::reason::PLAY_REASONS,
    );
    family(
        &mut out,
        "fleetcast_media_refused_total",
        "counter",
        "Connections refused or cut off for hostile input or over a limit, by reason.",
    );
    for r in crate::peer_limits::Refusal::ALL {
        let _ = writeln!(
            out,
            "fleetcast_media_refused_total{{reason=\"{}\"}} {}",
            r.as_str(),
            m.refused.get(r)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_line_is_name_labels_value() {
        let m = Metrics::default();
        m.bytes_out.add(Protocol::Flv, 42);
        let text = render(&m, &[]);
        let mut families = 0;
        for line in text.lines() {
            if line.starts_with("# TYPE") {
                families += 1;
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (name, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
            assert!(name.starts_with("fleetcast_media_"), "{line}");
        }
        assert!(families >= 10);
        assert!(text.contains("fleetcast_media_bytes_out_total{protocol=\"flv\"} 42"));
    }
}
