//! What a viewer plays: an RTMP or HTTP-FLV URL on a loopback address.

use std::net::{IpAddr, SocketAddr};

/// Playback protocol and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `rtmp://HOST:PORT/APP/NAME`.
    Rtmp {
        /// Server address.
        addr: SocketAddr,
        /// Application (`live`).
        app: String,
        /// Stream name (may contain further `/` segments).
        name: String,
        /// The `tcUrl` sent in `connect`.
        tc_url: String,
    },
    /// `http://HOST:PORT/PATH.flv`.
    HttpFlv {
        /// Server address.
        addr: SocketAddr,
        /// Request path with query.
        path: String,
        /// `Host` header value.
        host: String,
    },
}

/// Why a URL cannot be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Only `rtmp://` and `http://` are played.
    #[error("unsupported URL scheme in {0} (expected rtmp:// or http://)")]
    Scheme(String),
    /// HOST:PORT did not parse.
    #[error("bad host:port {0:?} (use an IP address, e.g. 127.0.0.1:1935)")]
    Address(String),
    /// Load is only generated against loopback.
    #[error("{0} is not a loopback address: media-bench only loads servers on this machine")]
    NotLoopback(IpAddr),
    /// RTMP needs `/APP/NAME`.
    #[error("RTMP URL needs /APP/NAME: {0}")]
    RtmpPath(String),
}

impl Target {
    /// Parses a playback URL. The host must be a loopback IP (or `localhost`).
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError::Scheme(url.to_owned()))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let default_port = match scheme {
            "rtmp" => 1935,
            "http" => 80,
            _ => return Err(UrlError::Scheme(url.to_owned())),
        };
        let addr = parse_addr(authority, default_port)?;
        if !addr.ip().is_loopback() {
            return Err(UrlError::NotLoopback(addr.ip()));
        }
        if scheme == "rtmp" {
            let (app, name) = path
                .split_once('/')
                .filter(|(a, n)| !a.is_empty() && !n.is_empty())
                .ok_or_else(|| UrlError::RtmpPath(url.to_owned()))?;
            Ok(Target::Rtmp {
                addr,
                app: app.to_owned(),
                name: name.to_owned(),
                tc_url: format!("rtmp://{authority}/{app}"),
            })
        } else {
            Ok(Target::HttpFlv {
                addr,
                path: format!("/{path}"),
                host: authority.to_owned(),
            })
        }
    }
}

fn parse_addr(authority: &str, default_port: u16) -> Result<SocketAddr, UrlError> {
    let bad = || UrlError::Address(authority.to_owned());
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = port.map_or(Ok(default_port), |p| p.parse::<u16>().map_err(|_| bad()))?;
    let ip: IpAddr = if host == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse().map_err(|_| bad())?
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rtmp_and_http_flv() {
        let t = Target::parse("rtmp://127.0.0.1:19350/live/bench").unwrap();
        assert_eq!(
            t,
            Target::Rtmp {
                addr: "127.0.0.1:19350".parse().unwrap(),
                app: "live".into(),
                name: "bench".into(),
                tc_url: "rtmp://127.0.0.1:19350/live".into(),
            }
        );
        let t = Target::parse("http://localhost:8080/live/bench.flv").unwrap();
        assert_eq!(
            t,
            Target::HttpFlv {
                addr: "127.0.0.1:8080".parse().unwrap(),
                path: "/live/bench.flv".into(),
                host: "localhost:8080".into(),
            }
        );
        assert!(matches!(
            Target::parse("rtmp://[::1]/live/a").unwrap(),
            Target::Rtmp { addr, .. } if addr == "[::1]:1935".parse().unwrap()
        ));
        assert!(matches!(
            Target::parse("http://[::1]:8080/live/a.flv").unwrap(),
            Target::HttpFlv { addr, .. } if addr == "[::1]:8080".parse().unwrap()
        ));
    }

    #[test]
    fn refuses_remote_and_malformed() {
        assert!(matches!(
            Target::parse("rtmp://10.0.0.1:1935/live/a"),
            Err(UrlError::NotLoopback(_))
        ));
        assert!(matches!(
            Target::parse("rtsp://127.0.0.1/live/a"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("rtmp://127.0.0.1:1935/live"),
            Err(UrlError::RtmpPath(_))
        ));
        assert!(matches!(
            Target::parse("rtmp://example.com/live/a"),
            Err(UrlError::Address(_))
        ));
    }
}
