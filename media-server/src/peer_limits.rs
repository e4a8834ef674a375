//! What one peer may cost the server beyond a single connection: a cap on
//! the connections one address holds at once (RTMP and HTTP together,
//! `limits.max_connections_per_ip`), and the counters of refused hostile
//! input that `/metrics` exposes as `fleetcast_media_refused_total{reason}`.
//!
//! Pure bookkeeping (no sockets): the accept loops ask for a slot and drop
//! the connection when none is left.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Why a peer was refused or cut off (the `reason` label of the metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A connection over `limits.max_connections_per_ip`.
    PerIpLimit,
    /// An HTTP request head (request line and headers) over `limits.max_http_head_bytes`.
    HttpHeadTooLarge,
    /// An HTTP request head not received within `limits.http_head_timeout_secs`.
    HttpHeadTimeout,
    /// An RTMP handshake not completed within `limits.handshake_timeout_secs`.
    RtmpHandshakeTimeout,
    /// Malformed RTMP (handshake, chunk stream, AMF) closed the connection.
    RtmpMalformed,
    /// A publisher over `limits.max_publish_bitrate`.
    PublishBitrate,
}

impl Refusal {
    /// Every reason, in metric order.
    pub const ALL: [Refusal; 6] = [
        Refusal::PerIpLimit,
        Refusal::HttpHeadTooLarge,
        Refusal::HttpHeadTimeout,
        Refusal::RtmpHandshakeTimeout,
        Refusal::RtmpMalformed,
        Refusal::PublishBitrate,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::PerIpLimit => "per_ip_limit",
            Refusal::HttpHeadTooLarge => "http_head_too_large",
            Refusal::HttpHeadTimeout => "http_head_timeout",
            Refusal::RtmpHandshakeTimeout => "rtmp_handshake_timeout",
            Refusal::RtmpMalformed => "rtmp_malformed",
            Refusal::PublishBitrate => "publish_bitrate",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Refusals counted by reason.
#[derive(Debug, Default)]
pub struct Refusals([AtomicU64; Refusal::ALL.len()]);

impl Refusals {
    /// Counts one refusal.
    pub fn count(&self, r: Refusal) {
        self.0[r.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// The count for `r`.
    pub fn get(&self, r: Refusal) -> u64 {
        self.0[r.index()].load(Ordering::Relaxed)
    }
}

/// Connections held per address. `max == 0` means no limit.
#[derive(Debug)]
pub struct PerIpLimit {
    max: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
    /// The Unix second a refusal was last logged: a flood is counted in
    /// full but logged once a second.
    last_log: AtomicU64,
}

/// One connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct IpSlot {
    limit: Arc<PerIpLimit>,
    ip: IpAddr,
}

impl PerIpLimit {
    /// A limit of `max` connections per address (0: unlimited).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            held: Mutex::new(HashMap::new()),
            last_log: AtomicU64::new(0),
        })
    }

    /// A slot for a new connection from `ip`, or `None` when `ip` already
    /// holds the maximum.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let ip = canonical(ip);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let n = held.entry(ip).or_insert(0);
        if self.max > 0 && *n >= self.max {
            if *n == 0 {
                held.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(IpSlot {
            limit: Arc::clone(self),
            ip,
        })
    }

    /// True at most once per second: whether to log a refusal now.
    pub fn log_due(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_log.swap(now, Ordering::Relaxed) != now
    }

    /// Connections `ip` holds now.
    pub fn held(&self, ip: IpAddr) -> usize {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.get(&canonical(ip)).copied().unwrap_or(0)
    }

    /// Addresses holding at least one connection (the map never keeps more).
    pub fn addresses(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut held = self
            .limit
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// An IPv4 peer on a dual-stack socket (`::ffff:a.b.c.d`) counts as the
/// IPv4 address, so one client has one count however it arrives.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_address_and_freed_on_drop() {
        let limit = PerIpLimit::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = limit.try_acquire(a).unwrap();
        let s2 = limit.try_acquire(a).unwrap();
        assert!(limit.try_acquire(a).is_none(), "third slot for one address");
        let _other = limit.try_acquire(b).unwrap();
        assert_eq!(limit.held(a), 2);
        drop(s1);
        assert_eq!(limit.held(a), 1);
        let s3 = limit.try_acquire(a).unwrap();
        drop((s2, s3));
        assert_eq!(limit.held(a), 0);
        assert_eq!(limit.addresses(), 1, "freed addresses leave the map");
    }

    #[test]
    fn mapped_ipv4_is_the_same_address() {
        let limit = PerIpLimit::new(1);
        let _v4 = limit.try_acquire("192.0.2.7".parse().unwrap()).unwrap();
        assert!(
            limit
                .try_acquire("::ffff:192.0.2.7".parse().unwrap())
                .is_none()
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let limit = PerIpLimit::new(0);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let slots: Vec<_> = (0..1000).map(|_| limit.try_acquire(ip).unwrap()).collect();
        assert_eq!(limit.held(ip), 1000);
        drop(slots);
        assert_eq!(limit.addresses(), 0);
    }

    #[test]
    fn refusals_count_by_reason() {
        let r = Refusals::default();
        r.count(Refusal::PerIpLimit);
        r.count(Refusal::PerIpLimit);
        r.count(Refusal::PublishBitrate);
        assert_eq!(r.get(Refusal::PerIpLimit), 2);
        assert_eq!(r.get(Refusal::PublishBitrate), 1);
        assert_eq!(r.get(Refusal::HttpHeadTimeout), 0);
        let labels: std::collections::HashSet<_> =
            Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Refusal::ALL.len());
    }
}
