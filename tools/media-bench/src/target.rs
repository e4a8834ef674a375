//! What a viewer plays: an RTMP or HTTP-FLV URL on a loopback address, or
//! inside a private network named with `--allow-net` (a test cluster's
//! Service and pod networks).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

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
    /// Load is only generated against loopback or the allowed networks.
    #[error(
        "{ip} is not a loopback address{}: media-bench only loads servers on this machine or in networks named with --allow-net",
        allowed_text(.allowed)
    )]
    NotAllowed {
        /// The refused address.
        ip: IpAddr,
        /// The networks that were allowed.
        allowed: Vec<IpNet>,
    },
    /// RTMP needs `/APP/NAME`.
    #[error("RTMP URL needs /APP/NAME: {0}")]
    RtmpPath(String),
}

fn allowed_text(allowed: &[IpNet]) -> String {
    if allowed.is_empty() {
        String::new()
    } else {
        let nets: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        format!(" nor inside --allow-net {}", nets.join(", "))
    }
}

/// An `--allow-net` network that is not private.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--allow-net {0} is not inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7): media-bench does not load public addresses"
)]
pub struct PublicNet(pub IpNet);

/// The ranges `--allow-net` may name: RFC 1918, shared address space (some
/// clusters' pod networks) and IPv6 unique local addresses. A cluster's
/// Service and pod networks are inside these; the Internet is not.
const PRIVATE: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

/// Checks that every network is private (see [`PRIVATE`]).
pub fn check_allowed(nets: &[IpNet]) -> Result<(), PublicNet> {
    for net in nets {
        let private = PRIVATE
            .iter()
            .filter_map(|p| p.parse::<IpNet>().ok())
            .any(|p| p.contains(net));
        if !private {
            return Err(PublicNet(*net));
        }
    }
    Ok(())
}

impl Target {
    /// Parses a playback URL. The host must be a loopback IP (or `localhost`).
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        Self::parse_allowing(url, &[])
    }

    /// Parses a playback URL whose host is a loopback IP (or `localhost`) or
    /// inside one of `allowed`.
    pub fn parse_allowing(url: &str, allowed: &[IpNet]) -> Result<Self, UrlError> {
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
        let ip = addr.ip();
        if !ip.is_loopback() && !allowed.iter().any(|n| n.contains(&ip)) {
            return Err(UrlError::NotAllowed {
                ip,
                allowed: allowed.to_vec(),
            });
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
            Err(UrlError::NotAllowed { .. })
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

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn allow_net_admits_cluster_networks_only() {
        let allowed = nets(&["10.96.0.0/12", "10.244.0.0/16"]);
        let t = Target::parse_allowing("rtmp://10.96.12.7:1935/live/a", &allowed).unwrap();
        assert!(
            matches!(t, Target::Rtmp { addr, .. } if addr == "10.96.12.7:1935".parse().unwrap())
        );
        let t = Target::parse_allowing("http://10.244.0.9:8080/live/a.flv", &allowed).unwrap();
        assert!(matches!(t, Target::HttpFlv { host, .. } if host == "10.244.0.9:8080"));
        // Loopback stays allowed.
        assert!(Target::parse_allowing("rtmp://127.0.0.1/live/a", &allowed).is_ok());
        // Outside every network: refused, and the error names what was allowed.
        let err = Target::parse_allowing("rtmp://10.112.0.1/live/a", &allowed).unwrap_err();
        assert!(matches!(err, UrlError::NotAllowed { .. }));
        let text = err.to_string();
        assert!(
            text.contains("10.112.0.1") && text.contains("10.96.0.0/12, 10.244.0.0/16"),
            "{text}"
        );
        assert!(
            !Target::parse("rtmp://10.1.2.3/live/a")
                .unwrap_err()
                .to_string()
                .contains("nor inside")
        );
        let v6 = nets(&["fd00:10:96::/108"]);
        assert!(Target::parse_allowing("rtmp://[fd00:10:96::a]:1935/live/a", &v6).is_ok());
        assert!(Target::parse_allowing("rtmp://[fd00:10:97::a]:1935/live/a", &v6).is_err());
    }

    #[test]
    fn allow_net_must_be_private() {
        assert_eq!(
            check_allowed(&nets(&[
                "10.96.0.0/12",
                "172.18.0.0/16",
                "100.64.1.0/24",
                "fd00::/64"
            ])),
            Ok(())
        );
        for public in [
            "0.0.0.0/0",
            "8.8.8.0/24",
            "9.0.0.0/7",
            "::/0",
            "2001:db8::/32",
        ] {
            let err = check_allowed(&nets(&["10.0.0.0/8", public])).unwrap_err();
            assert_eq!(err.0.to_string(), public);
            assert!(err.to_string().contains("not inside a private range"));
        }
    }
}
