//! The edge's pull-through cache with real origin and edge processes, a counting
//! proxy between the edge and the origin (it records every request head
//! the edge sends upstream and every byte the origin sends back), and real
//! clients: raw HTTP/1.1, ffprobe over RTMP.
#![allow(clippy::unwrap_used, clippy::panic, clippy::too_many_lines)]

mod common;
#[path = "support/http_client.rs"]
mod http_client;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    Server, TempDir, finish_probe, make_mp4, metric, output_bounded, parse_metrics, spawn_probe,
};
use fleetcast_media::edge::rendezvous::{Peer, owner};
use http_client::{get, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Deterministic bytes that differ per `seed`.
fn content(len: usize, seed: u32) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678 ^ seed.wrapping_mul(0x9e37_79b9);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn vod_file(origin: &Server, name: &str, data: &[u8]) -> PathBuf {
    let dir = origin.data.0.join("vod");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// What passed between the edge and the origin.
#[derive(Clone, Default)]
struct Traffic {
    heads: Arc<Mutex<Vec<String>>>,
    bytes_down: Arc<AtomicU64>,
}

impl Traffic {
    /// Request heads the edge sent for `path`.
    fn requests_for(&self, path: &str) -> Vec<String> {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.split_whitespace().nth(1) == Some(path))
            .cloned()
            .collect()
    }

    fn bytes_down(&self) -> u64 {
        self.bytes_down.load(Ordering::SeqCst)
    }
}

/// Relays one connection, recording request heads (the edge sends GETs
/// without bodies) and counting bytes back.
async fn relay(client: tokio::net::TcpStream, upstream: SocketAddr, traffic: Traffic) {
    let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = up.into_split();
    let t = traffic.clone();
    let up_dir = async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut pending = Vec::new();
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            while let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&pending[..i]).into_owned();
                t.heads.lock().unwrap().push(head);
                pending.drain(..i + 4);
            }
            if uw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = uw.shutdown().await;
    };
    let down_dir = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match ur.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            traffic.bytes_down.fetch_add(n as u64, Ordering::SeqCst);
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up_dir, down_dir);
}

/// A counting proxy in front of `origin`'s HTTP listener, on a runtime of
/// its own.
struct Proxy {
    addr: SocketAddr,
    traffic: Traffic,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    fn start(origin: &Server) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let traffic = Traffic::default();
        let origin_http = origin.http;
        let addr = runtime.block_on(async {
            let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = proxy.local_addr().unwrap();
            let t = traffic.clone();
            tokio::spawn(async move {
                while let Ok((c, _)) = proxy.accept().await {
                    tokio::spawn(relay(c, origin_http, t.clone()));
                }
            });
            addr
        });
        Self {
            addr,
            traffic,
            runtime: Some(runtime),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// A `fleetcast-media edge` process whose only upstream is a counting
/// proxy in front of the origin.
struct Edge {
    _server: Server,
    http: SocketAddr,
    admin: SocketAddr,
    rtmp: SocketAddr,
    traffic: Traffic,
    cache_dir: PathBuf,
    _cache: TempDir,
    /// The edge's own proxy, kept running as long as the edge.
    #[allow(dead_code)]
    own_proxy: Option<Proxy>,
}

impl Edge {
    /// An edge with a proxy of its own; `cache` holds extra `edge.cache`
    /// fields, e.g. `revalidate_secs: 0`.
    fn start(origin: &Server, cache: &[&str]) -> Self {
        let proxy = Proxy::start(origin);
        let mut edge = Self::behind(&proxy, cache, None, &[]);
        edge.own_proxy = Some(proxy);
        edge
    }

    /// An edge behind `proxy`, on HTTP address `http` if given, with extra
    /// lines under `edge:`.
    fn behind(proxy: &Proxy, cache: &[&str], http: Option<&str>, extra_edge: &[&str]) -> Self {
        let dir = TempDir::new("edge-cache");
        let mut fields = vec![format!("dir: \"{}\"", dir.0.display())];
        fields.extend(cache.iter().map(|f| (*f).to_owned()));
        let mut lines = vec![
            "role: edge".to_owned(),
            "edge:".to_owned(),
            format!("  upstreams: [\"http://{}\"]", proxy.addr),
            format!("  upstream_admin_port: {}", common::admin_port()),
            format!("  cache: {{ {} }}", fields.join(", ")),
        ];
        lines.extend(extra_edge.iter().map(|l| (*l).to_owned()));
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let server = match http {
            Some(addr) => Server::start_on(addr, &refs),
            None => Server::start_with(&refs),
        };
        Self {
            http: server.http,
            admin: server.admin,
            rtmp: server.rtmp,
            _server: server,
            traffic: proxy.traffic.clone(),
            cache_dir: dir.0.clone(),
            _cache: dir,
            own_proxy: None,
        }
    }

    fn metric(&self, name: &str) -> f64 {
        let r = get(self.admin, "/metrics");
        assert_eq!(r.status, 200);
        metric(&parse_metrics(&r.text()), name)
    }
}

/// A loopback address of its own, free a moment ago (for edges that must
/// know each other's address before they start).
fn free_addr() -> String {
    let l = std::net::TcpListener::bind((common::next_loopback(), 0)).unwrap();
    l.local_addr().unwrap().to_string()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.map(|e| e.unwrap().metadata().unwrap().len()).sum()
    })
}

#[test]
fn a_hundred_concurrent_cold_requests_make_one_upstream_fetch() {
    let origin = Server::start();
    let data = Arc::new(content(3 * 1024 * 1024 + 17, 1));
    vod_file(&origin, "big.mp4", &data);
    let edge = Edge::start(&origin, &[]);

    let barrier = Arc::new(std::sync::Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let (barrier, addr) = (Arc::clone(&barrier), edge.http);
            std::thread::spawn(move || {
                barrier.wait();
                get(addr, "/vod/big.mp4")
            })
        })
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200);
        assert!(r.body == *data, "a response differs from the file");
    }
    let fetches = edge.traffic.requests_for("/vod/big.mp4");
    assert_eq!(fetches.len(), 1, "{fetches:#?}");
    assert!(edge.traffic.bytes_down() < 2 * data.len() as u64);
    assert!((edge.metric("fleetcast_media_cache_upstream_requests_total") - 1.0).abs() < 0.5);

    // Later requests are hits and still exact.
    let again = get(edge.http, "/vod/big.mp4");
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert!(again.body == *data);
    assert_eq!(edge.traffic.requests_for("/vod/big.mp4").len(), 1);
    let hits = edge.metric("fleetcast_media_cache_hits_total{tier=\"disk\"}")
        + edge.metric("fleetcast_media_cache_hits_total{tier=\"memory\"}");
    assert!(hits >= 1.0, "{hits}");
}

#[test]
fn ranges_and_conditionals_match_the_origin() {
    let origin = Server::start();
    let data = content(300_000, 2);
    vod_file(&origin, "clip.mp4", &data);
    let edge = Edge::start(&origin, &[]);
    let direct = get(origin.http, "/vod/clip.mp4");
    let etag = direct.header("etag").unwrap().to_owned();
    let modified = direct.header("last-modified").unwrap().to_owned();

    let cases: [(&str, usize, usize); 6] = [
        ("bytes=0-0", 0, 0),
        ("bytes=0-99", 0, 99),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=-500", 299_500, 299_999),
        ("bytes=299990-", 299_990, 299_999),
        ("bytes=250000-999999", 250_000, 299_999),
    ];
    for (range, start, end) in cases {
        let r = request(edge.http, "GET", "/vod/clip.mp4", &[("Range", range)]);
        assert_eq!(r.status, 206, "{range}");
        assert!(r.body == data[start..=end], "{range}: wrong bytes");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/300000").as_str()),
            "{range}"
        );
        assert_eq!(r.header("etag"), Some(etag.as_str()));
    }
    let r = request(
        edge.http,
        "GET",
        "/vod/clip.mp4",
        &[("Range", "bytes=300000-")],
    );
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */300000"));

    let head = request(edge.http, "HEAD", "/vod/clip.mp4", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("300000"));
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-type"), Some("video/mp4"));
    assert_eq!(head.header("last-modified"), Some(modified.as_str()));

    // If-Range: the range applies only while the validator matches.
    let r = request(
        edge.http,
        "GET",
        "/vod/clip.mp4",
        &[("Range", "bytes=10-19"), ("If-Range", &etag)],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &data[10..20]));
    let r = request(
        edge.http,
        "GET",
        "/vod/clip.mp4",
        &[("Range", "bytes=10-19"), ("If-Range", "\"other\"")],
    );
    assert_eq!(r.status, 200);
    assert!(r.body == data);
    let r = request(
        edge.http,
        "GET",
        "/vod/clip.mp4",
        &[("Range", "bytes=10-19"), ("If-Range", &modified)],
    );
    assert_eq!(r.status, 206);

    // Conditionals answered by the edge itself.
    let r = request(
        edge.http,
        "GET",
        "/vod/clip.mp4",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = request(
        edge.http,
        "GET",
        "/vod/clip.mp4",
        &[("If-Modified-Since", &modified)],
    );
    assert_eq!(r.status, 304);

    // Errors as the origin gives them, and no traversal.
    assert_eq!(get(edge.http, "/vod/missing.mp4").status, 404);
    assert_eq!(get(edge.http, "/vod/%2e%2e/config.yaml").status, 400);
    assert_eq!(request(edge.http, "POST", "/vod/clip.mp4", &[]).status, 405);
    // Every range above came from one fetch.
    assert_eq!(edge.traffic.requests_for("/vod/clip.mp4").len(), 1);
}

#[test]
fn changed_files_are_revalidated_by_etag() {
    let origin = Server::start();
    let first = content(100_000, 3);
    let path = vod_file(&origin, "talk.mp4", &first);
    // Revalidate on every request.
    let edge = Edge::start(&origin, &["revalidate_secs: 0"]);

    let a = get(edge.http, "/vod/talk.mp4");
    assert_eq!((a.status, a.header("x-cache")), (200, Some("MISS")));
    assert!(a.body == first);
    let b = get(edge.http, "/vod/talk.mp4");
    assert_eq!((b.status, b.header("x-cache")), (200, Some("REVALIDATED")));
    assert!(b.body == first);
    let heads = edge.traffic.requests_for("/vod/talk.mp4");
    assert_eq!(heads.len(), 2, "{heads:#?}");
    let etag = a.header("etag").unwrap();
    assert!(
        heads[1]
            .to_ascii_lowercase()
            .contains(&format!("if-none-match: {}", etag.to_ascii_lowercase())),
        "{heads:#?}"
    );
    // The 304 carried no body: the file came down once.
    assert!(edge.traffic.bytes_down() < 2 * first.len() as u64);
    assert!(
        edge.metric("fleetcast_media_cache_revalidations_total{result=\"not_modified\"}") >= 1.0
    );

    // A new file on the origin (another length, so another ETag).
    let second = content(120_000, 4);
    std::fs::write(&path, &second).unwrap();
    let c = get(edge.http, "/vod/talk.mp4");
    assert_eq!(c.status, 200);
    assert!(c.body == second, "the edge served the old bytes");
    assert_ne!(c.header("etag"), Some(etag));
    let r = request(
        edge.http,
        "GET",
        "/vod/talk.mp4",
        &[("Range", "bytes=110000-110009")],
    );
    assert_eq!(
        (r.status, r.body.as_slice()),
        (206, &second[110_000..110_010])
    );
}

#[test]
fn the_disk_tier_stays_within_its_bound() {
    let origin = Server::start();
    let bound = 1024 * 1024;
    // Memory too small to hold any of these files.
    let edge = Edge::start(
        &origin,
        &[&format!("disk_bytes: {bound}"), "memory_bytes: 65536"],
    );
    let files: Vec<Vec<u8>> = (0..8).map(|i| content(300 * 1024, 10 + i)).collect();
    for (i, f) in files.iter().enumerate() {
        vod_file(&origin, &format!("f{i}.mp4"), f);
    }
    let objects = edge.cache_dir.join("objects");
    for (i, f) in files.iter().enumerate() {
        let r = get(edge.http, &format!("/vod/f{i}.mp4"));
        assert_eq!(r.status, 200);
        assert!(r.body == *f);
        let size = dir_bytes(&objects);
        assert!(size <= bound, "cache dir holds {size} bytes after f{i}");
    }
    assert!(dir_bytes(&objects) > 0);
    assert!(edge.metric("fleetcast_media_cache_size_bytes{tier=\"disk\"}") <= 1_048_576.0);
    // The most recent file is still held; the first was evicted.
    let last = get(edge.http, "/vod/f7.mp4");
    assert_eq!(last.header("x-cache"), Some("HIT"));
    let first = get(edge.http, "/vod/f0.mp4");
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert!(first.body == files[0]);
    assert!(dir_bytes(&objects) <= bound);
}

#[test]
fn objects_larger_than_the_disk_tier_are_never_written_to_it() {
    let origin = Server::start();
    // Memory answers objects up to 512 KiB (an eighth of the tier).
    let edge = Edge::start(&origin, &["disk_bytes: 65536", "memory_bytes: 4194304"]);
    let fits_memory = content(200 * 1024, 3);
    let too_large = content(600 * 1024, 4);
    vod_file(&origin, "big.mp4", &fits_memory);
    vod_file(&origin, "huge.mp4", &too_large);
    let objects = edge.cache_dir.join("objects");
    let r = get(edge.http, "/vod/big.mp4");
    assert_eq!(r.status, 200);
    assert!(r.body == fits_memory);
    assert_eq!(dir_bytes(&objects), 0, "a file over the bound was kept");
    // Bytes the cache answers count as the edge's egress.
    let stats = get(edge.admin, "/api/stats");
    let stats: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
    assert_eq!(stats["bytes_out"], fits_memory.len());
    // Too large for both tiers: passed through from the origin, whole or
    // by range, never written to the disk tier.
    let r = get(edge.http, "/vod/huge.mp4");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-cache"), Some("PASS"));
    assert!(r.body == too_large, "pass-through body differs");
    assert_eq!(dir_bytes(&objects), 0, "a file over the bound was kept");
    let r = request(
        edge.http,
        "GET",
        "/vod/huge.mp4",
        &[("Range", "bytes=100000-499999")],
    );
    assert_eq!(r.status, 206, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100000-499999/{}", too_large.len()).as_str())
    );
    assert!(r.body == too_large[100_000..500_000], "range bytes differ");
    assert_eq!(dir_bytes(&objects), 0, "a file over the bound was kept");
    let metrics = String::from_utf8(get(edge.admin, "/metrics").body).unwrap();
    assert!(
        metrics.contains("fleetcast_media_cache_pass_through_total 2\n"),
        "{metrics}"
    );
}

#[test]
fn disk_bytes_zero_is_a_memory_only_cache() {
    let origin = Server::start();
    // No disk tier; memory answers objects up to 512 KiB.
    let edge = Edge::start(&origin, &["disk_bytes: 0", "memory_bytes: 4194304"]);
    let small = content(200 * 1024, 5);
    let large = content(600 * 1024, 6);
    vod_file(&origin, "small.mp4", &small);
    vod_file(&origin, "large.mp4", &large);
    let objects = edge.cache_dir.join("objects");
    for expected in ["MISS", "HIT"] {
        let r = get(edge.http, "/vod/small.mp4");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-cache"), Some(expected));
        assert!(r.body == small, "small object bytes differ");
    }
    assert_eq!(edge.traffic.requests_for("/vod/small.mp4").len(), 1);
    let r = get(edge.http, "/vod/large.mp4");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("x-cache"), Some("PASS"));
    assert!(r.body == large, "passed-through bytes differ");
    let files = std::fs::read_dir(&objects).map_or(0, Iterator::count);
    assert_eq!(files, 0, "a file was written with no disk tier");
}

#[test]
fn rtmp_vod_on_the_edge_reads_the_origin_once() {
    let origin = Server::start();
    let dir = origin.data.0.join("vod");
    std::fs::create_dir_all(&dir).unwrap();
    make_mp4(&dir.join("show.mp4"), false);
    let size = std::fs::metadata(dir.join("show.mp4")).unwrap().len();
    let edge = Edge::start(&origin, &[]);

    for round in 0..2 {
        let url = format!("rtmp://{}/vod/show.mp4", edge.rtmp);
        let p = finish_probe(spawn_probe(&url), &url);
        assert_eq!(
            (p.video_codec.as_str(), p.audio_codec.as_str()),
            ("h264", "aac"),
            "round {round}: {p:?}"
        );
        assert_eq!(p.video_packets, 90, "round {round}: {p:?}");
    }
    // `mp4:show` names the same file.
    let url = format!("rtmp://{}/vod/mp4:show", edge.rtmp);
    assert_eq!(finish_probe(spawn_probe(&url), &url).video_packets, 90);
    let fetches = edge.traffic.requests_for("/vod/show.mp4");
    assert_eq!(fetches.len(), 1, "{fetches:#?}");
    assert!(edge.traffic.bytes_down() < 2 * size);
    // A name the origin does not have.
    let url = format!("rtmp://{}/vod/none.mp4", edge.rtmp);
    let out = output_bounded(spawn_probe(&url), Duration::from_mins(1), "ffprobe none");
    assert!(!out.status.success());
}

#[test]
fn clustered_edges_fetch_each_object_once_for_the_pool() {
    let origin = Server::start();
    let files: Vec<Vec<u8>> = (0..6).map(|i| content(200 * 1024, 40 + i)).collect();
    for (i, f) in files.iter().enumerate() {
        vod_file(&origin, &format!("p{i}.mp4"), f);
    }
    let proxy = Proxy::start(&origin);
    let addrs = [free_addr(), free_addr()];
    let peers = format!("    peers: [\"{}\", \"{}\"]", addrs[0], addrs[1]);
    let start = |me: &str| {
        Edge::behind(
            &proxy,
            &[],
            Some(me),
            &[
                "  balancing:",
                "    mode: clustered",
                &peers,
                &format!("    advertise: \"{me}\""),
            ],
        )
    };
    let edges = [start(&addrs[0]), start(&addrs[1])];
    let pool: Vec<Peer> = addrs.iter().map(Peer::new).collect();

    for (i, f) in files.iter().enumerate() {
        let path = format!("/vod/p{i}.mp4");
        // Ten concurrent requests on each edge of the pool.
        let threads: Vec<_> = (0..20)
            .map(|n| {
                let (addr, path) = (edges[n % 2].http, path.clone());
                std::thread::spawn(move || get(addr, &path))
            })
            .collect();
        for t in threads {
            let r = t.join().unwrap();
            assert_eq!(r.status, 200, "{path}");
            assert!(r.body == *f, "{path}: wrong bytes");
        }
        let fetched = proxy.traffic.requests_for(&path);
        assert_eq!(fetched.len(), 1, "{path}: {fetched:#?}");
    }
    // Each edge's disk holds only the objects it owns: the pool's capacity
    // adds up.
    for (e, edge) in edges.iter().enumerate() {
        let owned: u64 = (0..files.len())
            .filter(|i| owner(&format!("/vod/p{i}.mp4"), &pool).unwrap().addr == addrs[e])
            .map(|i| files[i].len() as u64)
            .sum();
        let held = dir_bytes(&edge.cache_dir.join("objects"));
        assert!(held <= owned, "edge {e} holds {held} bytes, owns {owned}");
    }
    let peer_requests: f64 = edges
        .iter()
        .map(|e| e.metric("fleetcast_media_cache_peer_requests_total"))
        .sum();
    assert!(peer_requests >= 1.0);
}

/// HLS objects through the cache itself (the edge's HTTP routing sends HLS
/// to the live relay; `EdgeCache::serve` answers any path for callers that
/// proxy HLS from an HTTP upstream).
#[test]
fn a_hundred_concurrent_misses_of_one_hls_segment_make_one_fetch() {
    use fleetcast_media::cache::EdgeCache;
    use fleetcast_media::config::{CacheConfig, EdgeConfig};
    use fleetcast_media::http_file::{Body, FileRequest};

    let origin = Server::start();
    let mut publisher = common::publish(&origin.rtmp_url("live", "cam"), 12);
    origin.wait_live("live", "cam");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let segment = loop {
        let r = get(origin.http, "/live/cam/index.m3u8");
        if r.status == 200
            && let Some(s) = r
                .text()
                .lines()
                .find(|l| !l.starts_with('#') && !l.is_empty())
        {
            break s.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no HLS segment");
        std::thread::sleep(Duration::from_millis(200));
    };
    let expected = get(origin.http, &format!("/live/cam/{segment}"));
    assert_eq!(expected.status, 200);
    let expected = expected.body;
    let proxy = Proxy::start(&origin);
    let dir = TempDir::new("cache-lib");
    let edge = EdgeConfig {
        upstreams: vec![format!("http://{}", proxy.addr)],
        cache: CacheConfig {
            dir: dir.0.clone(),
            playlist_ttl_ms: 60_000,
            ..CacheConfig::default()
        },
        ..EdgeConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seg_path = format!("/live/cam/{segment}");
    let bodies = runtime.block_on(async {
        let cache = EdgeCache::new(&edge, 0).unwrap();
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (cache, path) = (cache.clone(), seg_path.clone());
                tokio::spawn(async move {
                    let req = FileRequest {
                        method: "GET",
                        path: &path,
                        ..FileRequest::default()
                    };
                    let r = cache.serve(&req).await;
                    let body = match r.body {
                        Body::Bytes(b) => b.to_vec(),
                        Body::File { mut file, len, .. } => {
                            let mut v = Vec::new();
                            (&mut file).take(len).read_to_end(&mut v).await.unwrap();
                            v
                        }
                        Body::Empty => Vec::new(),
                        Body::Stream { .. } => panic!("a segment is cached, never passed through"),
                    };
                    (r.status, body)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        // The playlist: kept for its TTL (60 s here), so the second is a hit.
        let req = FileRequest {
            method: "GET",
            path: "/live/cam/index.m3u8",
            ..FileRequest::default()
        };
        let first = cache.serve(&req).await;
        let second = cache.serve(&req).await;
        assert_eq!(first.status, 200);
        assert_eq!(
            first.header("content-type"),
            Some("application/vnd.apple.mpegurl")
        );
        assert_eq!(second.header("x-cache"), Some("HIT"));
        out
    });
    for (status, body) in bodies {
        assert_eq!(status, 200);
        assert!(
            body == expected,
            "a segment answer differs from the origin's"
        );
    }
    assert_eq!(proxy.traffic.requests_for(&seg_path).len(), 1);
    assert_eq!(proxy.traffic.requests_for("/live/cam/index.m3u8").len(), 1);
    let _ = publisher.kill();
    let _ = publisher.wait();
}
