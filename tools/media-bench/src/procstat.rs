//! CPU time and resident memory of a server process and its children, read
//! from `/proc` (Linux). Parsing is pure and tested on sample text.

use std::path::Path;

use anyhow::{Context as _, Result};

/// CPU and memory of a set of processes at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// utime + stime in clock ticks.
    pub cpu_ticks: u64,
    /// Sum of `VmRSS` in KiB.
    pub rss_kib: u64,
}

/// utime + stime (fields 14 and 15) and the parent pid (field 4) from the
/// text of `/proc/PID/stat`. The command name may hold spaces and
/// parentheses, so fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<(u32, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field N is index N - 3.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
pub fn parse_vm_rss(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Usage of `pid` plus its direct children (nginx's workers).
pub fn usage_with_children(pid: u32) -> Result<Usage> {
    let mut pids = vec![pid];
    for entry in std::fs::read_dir("/proc").context("read /proc")?.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if parse_stat(&stat).is_some_and(|(ppid, _)| ppid == pid) {
            pids.push(child);
        }
    }
    let mut usage = Usage::default();
    for p in pids {
        let dir = Path::new("/proc").join(p.to_string());
        let stat = std::fs::read_to_string(dir.join("stat"))
            .with_context(|| format!("read /proc/{p}/stat"))?;
        let status = std::fs::read_to_string(dir.join("status"))
            .with_context(|| format!("read /proc/{p}/status"))?;
        usage.cpu_ticks += parse_stat(&stat).map_or(0, |(_, t)| t);
        usage.rss_kib += parse_vm_rss(&status).unwrap_or(0);
    }
    Ok(usage)
}

/// The 1-minute load average (how busy the machine was).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second for `/proc` CPU times (`getconf CLK_TCK`, 100 when unknown).
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_name() {
        let text = "4242 (nginx: worker (x) ) S 4241 4241 14812 0 -1 4194304 122 0 0 0 1500 250 0 0 20 0 1 0 82675 3133440 382";
        assert_eq!(parse_stat(text), Some((4241, 1750)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn parses_vm_rss() {
        let text = "Name:\tnginx\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(text), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn reads_own_process() {
        let u = usage_with_children(std::process::id()).unwrap();
        assert!(u.rss_kib > 0);
    }
}
