//! The upstream list: `rtmp://HOST:PORT` (live pulls) and `http://HOST:PORT`
//! (HTTP objects; the Fleetcast API on the same host's admin port). A host name stands for every
//! address it resolves to (a headless Service: one per origin pod), and is
//! resolved again on each lookup, so origins coming and going are seen.

use std::net::SocketAddr;

use tracing::debug;

use super::EdgeError;

/// Default ports when a URL has none.
const RTMP_PORT: u16 = 1935;
const HTTP_PORT: u16 = 80;

/// Which protocol an upstream URL speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RTMP: live streams are pulled from it.
    Rtmp,
    /// HTTP: a Fleetcast server's files (and, on its admin port, its API).
    Http,
}

/// One configured upstream URL, not resolved yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// The protocol.
    pub scheme: Scheme,
    /// `HOST:PORT` (port filled in).
    pub host_port: String,
}

/// Parses `rtmp://HOST[:PORT][/]` or `http://HOST[:PORT][/]`.
pub fn parse(url: &str) -> Result<UpstreamUrl, EdgeError> {
    let bad = || EdgeError::BadUpstream(url.to_owned());
    let (scheme, rest, port) = if let Some(r) = url.strip_prefix("rtmp://") {
        (Scheme::Rtmp, r, RTMP_PORT)
    } else if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r, HTTP_PORT)
    } else {
        return Err(bad());
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    let host_port = if has_port(host) {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    Ok(UpstreamUrl { scheme, host_port })
}

/// True when `host` ends in `:PORT` (IPv6 literals are bracketed).
fn has_port(host: &str) -> bool {
    match host.rsplit_once(':') {
        Some((h, p)) => p.parse::<u16>().is_ok() && (!h.contains(':') || h.ends_with(']')),
        None => false,
    }
}

/// Parses every URL of the list.
pub fn parse_all(urls: &[String]) -> Result<Vec<UpstreamUrl>, EdgeError> {
    urls.iter().map(|u| parse(u)).collect()
}

/// The addresses of `scheme` upstreams, each host resolved now. A name
/// that does not resolve is skipped (its pods may be starting).
pub async fn resolve(urls: &[UpstreamUrl], scheme: Scheme) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for u in urls.iter().filter(|u| u.scheme == scheme) {
        match tokio::net::lookup_host(&u.host_port).await {
            Ok(addrs) => {
                for a in addrs {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
            Err(e) => debug!(upstream = %u.host_port, error = %e, "upstream does not resolve"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schemes_and_default_ports() {
        assert_eq!(
            parse("rtmp://origin.ns.svc").unwrap(),
            UpstreamUrl {
                scheme: Scheme::Rtmp,
                host_port: "origin.ns.svc:1935".into()
            }
        );
        assert_eq!(
            parse("http://10.0.0.1:8080/").unwrap(),
            UpstreamUrl {
                scheme: Scheme::Http,
                host_port: "10.0.0.1:8080".into()
            }
        );
        assert_eq!(parse("rtmp://[::1]:1936").unwrap().host_port, "[::1]:1936");
        assert_eq!(parse("rtmp://[::1]").unwrap().host_port, "[::1]:1935");
    }

    #[test]
    fn refuses_other_urls() {
        for u in ["ftp://x", "rtmp://", "rtmp://h/live", "origin:1935"] {
            assert!(parse(u).is_err(), "{u}");
        }
    }

    #[tokio::test]
    async fn resolves_each_address_once() {
        let urls = parse_all(&[
            "rtmp://127.0.0.1:1935".into(),
            "rtmp://127.0.0.1:1935".into(),
            "http://127.0.0.1:8080".into(),
        ])
        .unwrap();
        let rtmp = resolve(&urls, Scheme::Rtmp).await;
        assert_eq!(rtmp, vec!["127.0.0.1:1935".parse::<SocketAddr>().unwrap()]);
        let http = resolve(&urls, Scheme::Http).await;
        assert_eq!(http, vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]);
    }
}
