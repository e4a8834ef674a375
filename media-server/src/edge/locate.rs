//! Finding which upstream holds a live stream.
//!
//! Fleetcast servers (the `http://` upstreams, and peer edges) are asked
//! over their `/api/streams` on their admin port (`edge.upstream_admin_port`,
//! same host as the upstream URL), which also says their role and RTMP port. An
//! origin that lists the stream is pulled from; one that does not is
//! skipped. An edge that does not list it yet may still find it (it pulls
//! on demand too), and a plain RTMP server (nginx-rtmp, another vendor)
//! cannot be asked: those are tried with a pull that must deliver media
//! within a bounded time. Every candidate is tried at once; the first to
//! deliver media wins and the others are dropped.
//!
//! [`plan`] is the pure decision; the rest is I/O.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::EdgeError;
use crate::hub::StreamKey;
use crate::media::Tag;
use crate::rtmp::Puller;

/// Time for a `/api/streams` answer.
pub const API_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest `/api/streams` document read.
const MAX_API_BODY: usize = 4 << 20;
/// Tags buffered between a pull's socket task and the relay.
const PULL_QUEUE: usize = 256;

/// What a Fleetcast server said about one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// It is an edge (it may pull the stream on demand).
    pub edge: bool,
    /// Its RTMP port, when it says.
    pub rtmp_port: Option<u16>,
    /// It has the stream live now.
    pub has: bool,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    rtmp_port: Option<u16>,
    #[serde(default)]
    streams: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    app: String,
    name: String,
}

/// Reads a `/api/streams` document for `key`; `None` if it is not one.
pub fn parse_listing(body: &[u8], key: &StreamKey) -> Option<Listing> {
    let doc: Doc = serde_json::from_slice(body).ok()?;
    Some(Listing {
        edge: doc.role.as_deref() == Some("edge"),
        rtmp_port: doc.rtmp_port,
        has: doc
            .streams
            .iter()
            .any(|e| e.app == key.app && e.name == key.name),
    })
}

/// One Fleetcast server asked, and its answer (`None`: no answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// The address asked (its admin listener; only the host is used to
    /// reach its RTMP port).
    pub http: SocketAddr,
    /// What it said.
    pub listing: Option<Listing>,
}

/// The RTMP addresses to try for a stream, given what the Fleetcast
/// servers said and the plain `rtmp://` upstream addresses. Servers that
/// list the stream win outright; otherwise edges and every RTMP upstream
/// no Fleetcast origin answered for are tried blind.
pub fn plan(asked: &[Asked], rtmp: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut has = Vec::new();
    let mut blind = Vec::new();
    let mut covered = HashSet::new();
    for a in asked {
        let Some(l) = &a.listing else { continue };
        let Some(port) = l.rtmp_port else { continue };
        let addr = SocketAddr::new(a.http.ip(), port);
        covered.insert(addr);
        if l.has {
            has.push(addr);
        } else if l.edge {
            blind.push(addr);
        }
    }
    if !has.is_empty() {
        dedup(&mut has);
        return has;
    }
    blind.extend(rtmp.iter().filter(|a| !covered.contains(a)).copied());
    dedup(&mut blind);
    blind
}

fn dedup(v: &mut Vec<SocketAddr>) {
    let mut seen = HashSet::new();
    v.retain(|a| seen.insert(*a));
}

/// `GET path` on `addr` (HTTP/1.0, whole response, bounded): status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>), EdgeError> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        (&mut s)
            .take(u64::try_from(MAX_API_BODY).unwrap_or(u64::MAX))
            .read_to_end(&mut buf)
            .await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(API_TIMEOUT, fut)
        .await
        .map_err(|_| EdgeError::Api(addr, "timed out".into()))?
        .map_err(|e| EdgeError::Api(addr, e.to_string()))?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&buf) {
        Ok(httparse::Status::Complete(n)) => Ok((resp.code.unwrap_or(0), buf[n..].to_vec())),
        Ok(httparse::Status::Partial) => Err(EdgeError::Api(addr, "truncated response".into())),
        Err(e) => Err(EdgeError::Api(addr, e.to_string())),
    }
}

/// Asks the Fleetcast server at `http` about `key`.
pub async fn ask(http: SocketAddr, key: &StreamKey) -> Asked {
    let listing = match http_get(http, "/api/streams").await {
        Ok((200, body)) => parse_listing(&body, key),
        Ok((status, _)) => {
            debug!(upstream = %http, status, "upstream /api/streams refused");
            None
        }
        Err(e) => {
            debug!(error = %e, "upstream /api/streams failed");
            None
        }
    };
    Asked { http, listing }
}

/// A pull delivering media: its first tag and the rest through `rx`.
#[derive(Debug)]
pub struct Pull {
    /// Where it comes from.
    pub upstream: SocketAddr,
    /// The first media tag.
    pub first: Tag,
    /// The following tags; closed when the upstream ends the stream.
    pub rx: mpsc::Receiver<Tag>,
}

/// Timeouts of one pull attempt.
#[derive(Debug, Clone, Copy)]
pub struct PullTimeouts {
    /// Up to `Play.Start` (an upstream edge answers only once it has the stream).
    pub connect: Duration,
    /// From `Play.Start` to the first media tag (a plain RTMP server
    /// answers `Play.Start` for any name and then waits for a publisher).
    pub media: Duration,
}

/// Opens a pull of `key` from `upstream` and waits for its first tag. The
/// socket is read by its own task (on `tasks`) until the returned
/// receiver is dropped or `shutdown` fires.
pub async fn open_pull(
    upstream: SocketAddr,
    key: &StreamKey,
    timeouts: PullTimeouts,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<Pull, EdgeError> {
    // Signed by this edge when play signing is on (`auth::upstream`).
    let url = format!(
        "rtmp://{upstream}/{}/{}{}",
        key.app,
        key.name,
        crate::auth::upstream::rtmp_suffix(&key.app, &key.name)
    );
    let mut puller = Puller::connect(&url, timeouts.connect)
        .await
        .map_err(|e| EdgeError::Pull(upstream, e.to_string()))?;
    let (tx, mut rx) = mpsc::channel(PULL_QUEUE);
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                r = puller.next_tag() => match r {
                    Ok(Some(tag)) => {
                        if tx.send(tag).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        debug!(%upstream, error = %e, "pull ended");
                        return;
                    }
                },
                () = tx.closed() => return,
                () = shutdown.cancelled() => return,
            }
        }
    });
    match tokio::time::timeout(timeouts.media, rx.recv()).await {
        Ok(Some(first)) => Ok(Pull {
            upstream,
            first,
            rx,
        }),
        Ok(None) => Err(EdgeError::Pull(upstream, "ended before any media".into())),
        Err(_) => Err(EdgeError::Pull(
            upstream,
            format!("no media within {:?}", timeouts.media),
        )),
    }
}

/// Tries every candidate at once; the first to deliver media wins.
pub async fn first_pull(
    candidates: &[SocketAddr],
    key: &StreamKey,
    timeouts: PullTimeouts,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<Pull, EdgeError> {
    let mut set = tokio::task::JoinSet::new();
    // Each task's candidate, so a task that panicked is blamed on its own.
    let mut of_task = std::collections::HashMap::new();
    for &c in candidates {
        let (k, t, s) = (key.clone(), tasks.clone(), shutdown.clone());
        let handle = set.spawn(async move { open_pull(c, &k, timeouts, &t, &s).await });
        of_task.insert(handle.id(), c);
    }
    let mut last = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(pull)) => return Ok(pull),
            Ok(Err(e)) => {
                debug!(stream = %key, error = %e, "candidate upstream failed");
                last = Some(e);
            }
            Err(e) => match of_task.get(&e.id()) {
                Some(&c) => last = Some(EdgeError::Pull(c, e.to_string())),
                None => last = Some(EdgeError::NotFound(key.clone())),
            },
        }
    }
    Err(last.map_or_else(
        || EdgeError::NotFound(key.clone()),
        |e| EdgeError::NotFoundAfter(key.clone(), e.to_string()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
    #[allow(clippy::unnecessary_wraps)] // reads as the field it fills
    fn listing(edge: bool, port: u16, has: bool) -> Option<Listing> {
        Some(Listing {
            edge,
            rtmp_port: Some(port),
            has,
        })
    }

    #[test]
    fn parses_api_documents() {
        let key = StreamKey::new("live", "cam");
        let doc = br#"{"role":"edge","rtmp_port":1936,"streams":[{"app":"live","name":"cam","viewers":3}]}"#;
        assert_eq!(
            parse_listing(doc, &key),
            Some(Listing {
                edge: true,
                rtmp_port: Some(1936),
                has: true
            })
        );
        let old = br#"{"streams":[{"app":"live","name":"other"}]}"#;
        assert_eq!(
            parse_listing(old, &key),
            Some(Listing {
                edge: false,
                rtmp_port: None,
                has: false
            })
        );
        assert_eq!(parse_listing(b"<html>", &key), None);
    }

    #[test]
    fn an_origin_listing_the_stream_wins_outright() {
        let asked = [
            Asked {
                http: a("10.0.0.1:8080"),
                listing: listing(false, 1935, false),
            },
            Asked {
                http: a("10.0.0.2:8080"),
                listing: listing(false, 1935, true),
            },
        ];
        let rtmp = [a("10.0.0.1:1935"), a("10.0.0.2:1935"), a("10.9.9.9:1935")];
        assert_eq!(plan(&asked, &rtmp), vec![a("10.0.0.2:1935")]);
    }

    #[test]
    fn without_a_listing_edges_and_unanswered_rtmp_upstreams_are_tried() {
        let asked = [
            // An origin without the stream: skipped, and its RTMP address too.
            Asked {
                http: a("10.0.0.1:8080"),
                listing: listing(false, 1935, false),
            },
            // A parent edge: it may find the stream.
            Asked {
                http: a("10.0.1.1:8080"),
                listing: listing(true, 1935, false),
            },
            // A dead origin: its RTMP address is tried (and fails fast).
            Asked {
                http: a("10.0.0.3:8080"),
                listing: None,
            },
        ];
        let rtmp = [a("10.0.0.1:1935"), a("10.0.0.3:1935"), a("10.5.5.5:1935")];
        assert_eq!(
            plan(&asked, &rtmp),
            vec![a("10.0.1.1:1935"), a("10.0.0.3:1935"), a("10.5.5.5:1935")]
        );
    }

    #[test]
    fn plain_rtmp_upstreams_alone_are_all_tried() {
        let rtmp = [
            a("127.0.0.1:1935"),
            a("127.0.0.1:1935"),
            a("127.0.0.1:1936"),
        ];
        assert_eq!(
            plan(&[], &rtmp),
            vec![a("127.0.0.1:1935"), a("127.0.0.1:1936")]
        );
    }
}
