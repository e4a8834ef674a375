//! Reading an edge pod's `/api/stats` (the media server's viewers and egress
//! rate) over HTTP/1.1 with hyper's pooled client (already in the tree
//! through kube), each request bounded by a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// Path of the document on every media-server pod.
pub const PATH: &str = "/api/stats";
/// Largest document accepted.
const MAX_BODY: usize = 64 * 1024;

/// What the operator reads from one edge (fields of the media server's `stats::Stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct PodStats {
    /// Playback sessions on the pod.
    pub viewers: u64,
    /// Egress over the last seconds, bits per second.
    pub egress_bits_per_second: u64,
    /// The pod is leaving (SIGTERM received).
    #[serde(default)]
    pub draining: bool,
}

/// The sum of one field over the pods that reported, `None` when none did.
/// The values come from the pods over HTTP, so the sum saturates at
/// `i64::MAX` rather than wrapping or overflowing.
pub fn total(reported: &[&PodStats], field: fn(&PodStats) -> u64) -> Option<i64> {
    (!reported.is_empty()).then(|| {
        reported.iter().fold(0_i64, |sum, s| {
            sum.saturating_add(i64::try_from(field(s)).unwrap_or(i64::MAX))
        })
    })
}

/// Why a pod's stats could not be read (the pod then counts as missing).
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// No answer within the timeout.
    #[error("{0}: no answer within the timeout")]
    Timeout(SocketAddr),
    /// Connecting or reading failed.
    #[error("{0}: {1}")]
    Http(SocketAddr, String),
    /// Not a 200.
    #[error("{0}: answered {1}")]
    Status(SocketAddr, u16),
    /// Not the expected JSON.
    #[error("{0}: {1}")]
    Body(SocketAddr, String),
}

/// A pooled client for the stats requests.
#[derive(Clone)]
pub struct StatsClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl StatsClient {
    /// A client whose requests each give up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_mins(1))
            .pool_max_idle_per_host(1)
            .build(connector);
        Self { client, timeout }
    }

    /// `GET http://ADDR/api/stats`.
    pub async fn get(&self, addr: SocketAddr) -> Result<PodStats, StatsError> {
        tokio::time::timeout(self.timeout, self.fetch(addr))
            .await
            .map_err(|_| StatsError::Timeout(addr))?
    }

    async fn fetch(&self, addr: SocketAddr) -> Result<PodStats, StatsError> {
        let uri: hyper::Uri = format!("http://{addr}{PATH}")
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| StatsError::Http(addr, e.to_string()))?;
        let response = self
            .client
            .get(uri)
            .await
            .map_err(|e| StatsError::Http(addr, e.to_string()))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(StatsError::Status(addr, status));
        }
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| StatsError::Http(addr, e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| StatsError::Body(addr, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_media_servers_document() {
        let doc = r#"{"viewers":12,"streams":2,"egress_bits_per_second":3400000,"window_secs":10,"bytes_out":99,"draining":false}"#;
        let s: PodStats = serde_json::from_str(doc).unwrap();
        assert_eq!(
            s,
            PodStats {
                viewers: 12,
                egress_bits_per_second: 3_400_000,
                draining: false
            }
        );
    }

    #[test]
    fn totals_saturate_on_huge_values() {
        let stats = |viewers| PodStats {
            viewers,
            egress_bits_per_second: 0,
            draining: false,
        };
        let (one, huge) = (stats(1), stats(u64::MAX));
        assert_eq!(total(&[], |s| s.viewers), None);
        assert_eq!(total(&[&one, &one], |s| s.viewers), Some(2));
        assert_eq!(total(&[&huge], |s| s.viewers), Some(i64::MAX));
        assert_eq!(total(&[&huge, &huge], |s| s.viewers), Some(i64::MAX));
        assert_eq!(total(&[&one, &huge], |s| s.viewers), Some(i64::MAX));
        let max = stats(u64::try_from(i64::MAX).unwrap());
        assert_eq!(total(&[&max, &one], |s| s.viewers), Some(i64::MAX));
    }

    #[tokio::test]
    async fn a_closed_port_is_an_error_not_a_hang() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = StatsClient::new(Duration::from_secs(2))
            .get(addr)
            .await
            .unwrap_err();
        assert!(matches!(err, StatsError::Http(..)), "{err}");
    }
}
