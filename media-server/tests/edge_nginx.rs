//! An edge and nginx-rtmp (Debian's libnginx-mod-rtmp) in both directions,
//! real processes on loopback: an edge pulls a stream published to
//! nginx-rtmp (a plain RTMP upstream it cannot ask, so it tries a pull),
//! and nginx-rtmp with its `pull` directive plays a stream from an edge
//! (which itself pulls from an origin). ffprobe/ffmpeg count the frames.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
mod edge_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, TempDir, http_get, publish, stream_of};
use edge_common::{
    Reaped, finish_player, free_addr, spawn_player, start_edge, urls_of, viewers, wait_until,
};

const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// nginx with the RTMP module on a free loopback port, `app_extra` added
/// to `application live { live on; ... }`. Returns its address.
fn start_nginx(app_extra: &str) -> (Reaped, String, TempDir) {
    let found = Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found && Path::new(MODULE).exists(),
        "nginx with the RTMP module is needed: apt-get install nginx libnginx-mod-rtmp (make deps)"
    );
    let prefix = TempDir::new("nginx");
    let addr = free_addr();
    // One process (`master_process off`): the guard ends it with SIGKILL,
    // which would leave a master's worker running and listening.
    let conf = format!(
        "load_module {MODULE};\ndaemon off;\nmaster_process off;\npid {p}/nginx.pid;\n\
         error_log {p}/error.log info;\nevents {{ worker_connections 256; }}\n\
         rtmp {{ server {{ listen {addr}; application live {{ live on; {app_extra} }} }} }}\n",
        p = prefix.0.display()
    );
    let path = prefix.0.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&prefix.0)
        .arg("-e")
        .arg(prefix.0.join("error.log"))
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting nginx");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nginx did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Reaped(child), addr, prefix)
}

#[test]
fn an_edge_pulls_from_nginx_rtmp() {
    let (_nginx, addr, _prefix) = start_nginx("");
    let _publisher = Reaped(publish(&format!("rtmp://{addr}/live/ng"), 60));
    let (edge, _cache) = start_edge(&[format!("rtmp://{addr}")], 3, &[]);
    // The publisher needs a moment to connect to nginx; players retry.
    let mut played = None;
    for _ in 0..10 {
        let p = finish_player(spawn_player(&edge.flv_url("live", "ng"), 5), "HTTP-FLV");
        if p.success {
            played = Some(p);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let played = played.expect("the edge never served the nginx stream");
    assert!(played.count(0) >= 90, "{} video packets", played.count(0));
    let s = edge.streams();
    assert_eq!(
        stream_of(&s, "live", "ng").unwrap()["upstream"],
        format!("rtmp://{addr}"),
        "{s}"
    );
    let played = finish_player(spawn_player(&edge.rtmp_url("live", "ng"), 4), "RTMP");
    assert!(played.success, "{}", played.stderr);
    assert!(played.count(0) >= 60);
    // A name nginx does not have: refused once the bounded wait for media ends.
    let (status, _) = http_get(edge.http, "/live/none.flv");
    assert_eq!(status, 404);
}

#[test]
fn nginx_rtmp_pulls_from_an_edge() {
    let origin = Server::start();
    let _publisher = Reaped(publish(&origin.rtmp_url("live", "up"), 60));
    origin.wait_live("live", "up");
    let (edge, _cache) = start_edge(&urls_of(&origin), 3, &[]);
    let (_nginx, addr, _prefix) = start_nginx(&format!("pull rtmp://{}/live;", edge.rtmp));

    let viewer = spawn_player(&format!("rtmp://{addr}/live/up"), 6);
    // nginx is one viewer of the edge, the edge one of the origin.
    wait_until(
        Duration::from_secs(40),
        "nginx pulling from the edge",
        || viewers(&edge, "live", "up") == 1,
    );
    assert_eq!(viewers(&origin, "live", "up"), 1);
    let s = edge.streams();
    assert_eq!(
        stream_of(&s, "live", "up").unwrap()["upstream"],
        format!("rtmp://{}", origin.rtmp),
        "{s}"
    );
    let played = finish_player(viewer, "via nginx");
    assert!(played.success, "{}", played.stderr);
    assert!(played.count(0) >= 120, "{} video packets", played.count(0));
    assert!(played.count(1) > 0, "no audio through nginx");
}
