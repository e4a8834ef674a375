//! `fleetcast-operator probe URL`: one HTTP GET, for checks run from the
//! operator's image, which has no shell and no curl (the chart's `helm test`
//! asks the operator's Service for /healthz this way).
//!
//! The URL is parsed by `http::Uri` and the response head by `httparse`
//! (hyper's parser); only the request line is written by hand.

use std::time::Duration;

use http::Uri;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest response head read before giving up on finding its end.
const MAX_HEAD: usize = 16 * 1024;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not `http://HOST[:PORT][/PATH]`.
    #[error("{url}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting, writing or reading failed.
    #[error("talking to {target}")]
    Io {
        /// host:port.
        target: String,
        /// Why.
        source: std::io::Error,
    },
    /// No answer within the timeout.
    #[error("{0}: no answer in time")]
    Timeout(String),
    /// The bytes that came back are not an HTTP/1 response head.
    #[error("{0}: not an HTTP response")]
    NotHttp(String),
}

/// Where a probe goes: parsed from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (80 when the URL names none).
    pub port: u16,
    /// Path and query, at least "/".
    pub path: String,
}

impl Target {
    /// Parses `http://HOST[:PORT][/PATH]`; https is refused (nothing here needs it).
    pub fn parse(url: &str) -> Result<Target, ProbeError> {
        let bad = |reason: &str| ProbeError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => return Err(bad(&format!("scheme {other} is not supported, only http"))),
            None => return Err(bad("give an absolute URL, e.g. http://HOST:8080/healthz")),
        }
        let host = uri
            .host()
            .ok_or_else(|| bad("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let path = uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        Ok(Target {
            host,
            port: uri.port_u16().unwrap_or(80),
            path: if path.is_empty() { "/" } else { path }.to_owned(),
        })
    }

    /// host:port as a socket address string.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The request bytes: a GET that asks the server to close afterwards.
    pub fn request(&self) -> Vec<u8> {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: fleetcast-operator-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.path,
            self.authority()
        )
        .into_bytes()
    }
}

/// The status code of a response head, `None` while it is incomplete.
pub fn status(response: &[u8]) -> Result<Option<u16>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    Ok(match parsed.parse(response)? {
        httparse::Status::Complete(_) => parsed.code,
        httparse::Status::Partial => None,
    })
}

/// GETs `target` and returns the status code.
pub async fn get(target: &Target, timeout: Duration) -> Result<u16, ProbeError> {
    let authority = target.authority();
    tokio::time::timeout(timeout, exchange(target, &authority))
        .await
        .map_err(|_| ProbeError::Timeout(authority.clone()))?
}

async fn exchange(target: &Target, authority: &str) -> Result<u16, ProbeError> {
    let io = |source| ProbeError::Io {
        target: authority.to_owned(),
        source,
    };
    let mut stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(io)?;
    stream.write_all(&target.request()).await.map_err(io)?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(io)?;
        head.extend_from_slice(&chunk[..n]);
        match status(&head) {
            Ok(Some(code)) => return Ok(code),
            Ok(None) if n > 0 && head.len() < MAX_HEAD => {}
            _ => return Err(ProbeError::NotHttp(authority.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_urls() {
        let t =
            Target::parse("http://fleetcast-operator-metrics.fleetcast-system.svc:8080/healthz")
                .unwrap();
        assert_eq!(
            t,
            Target {
                host: "fleetcast-operator-metrics.fleetcast-system.svc".into(),
                port: 8080,
                path: "/healthz".into()
            }
        );
        let t = Target::parse("http://10.0.0.1").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        let t = Target::parse("http://[::1]:9/readyz?x=1").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.authority(), "[::1]:9");
        assert_eq!(t.path, "/readyz?x=1");
    }

    #[test]
    fn refuses_what_it_cannot_probe() {
        for url in [
            "https://a/healthz",
            "/healthz",
            "a:8080",
            "http://",
            "ftp://x/",
        ] {
            assert!(Target::parse(url).is_err(), "{url}");
        }
        let err = Target::parse("https://a/").unwrap_err().to_string();
        assert!(err.contains("only http"), "{err}");
    }

    #[test]
    fn request_is_one_get_that_closes() {
        let req = Target::parse("http://op:8080/healthz").unwrap().request();
        let text = String::from_utf8(req).unwrap();
        assert!(
            text.starts_with("GET /healthz HTTP/1.1\r\nHost: op:8080\r\n"),
            "{text}"
        );
        assert!(text.ends_with("Connection: close\r\n\r\n"), "{text}");
    }

    #[test]
    fn reads_the_status_of_complete_heads_only() {
        assert_eq!(
            status(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n"),
            Ok(Some(200))
        );
        assert_eq!(
            status(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"),
            Ok(Some(503))
        );
        assert_eq!(status(b"HTTP/1.1 200 OK\r\ncontent-"), Ok(None));
        assert_eq!(status(b""), Ok(None));
        assert!(status(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn gets_from_a_real_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let target = Target::parse(&format!("http://{addr}/healthz")).unwrap();
        let code = get(&target, Duration::from_secs(10)).await.unwrap();
        assert_eq!(code, 204);
        assert!(server.await.unwrap().starts_with("GET /healthz "));
    }

    #[tokio::test]
    async fn a_closed_port_is_an_io_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let target = Target::parse(&format!("http://{addr}/")).unwrap();
        let err = get(&target, Duration::from_secs(10)).await.unwrap_err();
        assert!(matches!(err, ProbeError::Io { .. }), "{err}");
    }
}
