//! The viewer autoscaler against real media servers: `fleetcast-media`
//! processes with ffmpeg publishing and rtmpdump viewers serve real
//! `/api/stats`, and the operator runs on the real control plane.
//!
//! No kubelet runs here, so the test plays the kubelet's part for the pods
//! the ReplicaSet creates: it starts a media server per pod on its own
//! loopback address (127.x.y.N, the admin port every edge pod uses, 8081) and
//! writes that address into the pod's status as its IP, with phase Running.
//! The operator then reads `http://POD_IP:8081/api/stats` exactly as in a
//! cluster: no test hook in the operator. Pods it does not start stay
//! Pending, as HPA counts them (not started).

// Test crate: panics are the failure reports; kinds are prose in docs.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::doc_markdown,
    clippy::too_many_lines
)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{InProcess, WAIT, create, install_crd, mc_from_yaml};
use fleetcast_operator::autoscale::pods::DELETION_COST_ANNOTATION;
use fleetcast_operator::autoscale::run::{MANAGER as AUTOSCALER, Settings};
use fleetcast_operator::crd::MediaCluster;
use fleetcast_operator::crd::v1alpha1::PoolAutoscalingStatus;
use fleetcast_testkit::cluster::Cluster;
use fleetcast_testkit::wait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const MC: &str = r"
apiVersion: fleetcast.io/v1alpha1
kind: MediaCluster
metadata: { name: live }
spec:
  origin: { replicas: 1 }
  edges:
    - name: london
      autoscaling:
        minReplicas: 2
        maxReplicas: 6
        metric: viewers
        target: 2
        behavior:
          scaleDown: { stabilizationWindowSeconds: 3 }
";

const DEPLOYMENT: &str = "live-edge-london";
const POOL_PODS: &str = "app.kubernetes.io/instance=live,fleetcast.io/pool=london";

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is needed by this test (make deps installs it)"
    );
}

/// The `fleetcast-media` binary of this workspace's build, built first (once
/// per test process) so the test runs the current media server, not whatever
/// a previous build left: `cargo test -p fleetcast-operator` does not build it.
/// Cargo holds its build lock only while building, not while tests run.
fn media_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_media_binary).clone()
}

fn build_media_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // TARGET/<profile>/deps/autoscale-HASH -> TARGET/<profile>/fleetcast-media
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let target = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        other => other,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "-p", "fleetcast-media", "--bin", "fleetcast-media"])
        .args(["--profile", profile])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "building fleetcast-media failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = profile_dir.join("fleetcast-media");
    assert!(bin.exists(), "{} is missing after the build", bin.display());
    bin
}

/// A loopback network of this test run: 127.A.B.0/24.
fn loopback_net() -> (u8, u8) {
    let pid = std::process::id();
    (
        100 + u8::try_from(pid % 100).unwrap(),
        1 + u8::try_from((pid / 100) % 250).unwrap(),
    )
}

/// A media server standing in for one edge pod.
struct Edge {
    child: Child,
    ip: IpAddr,
    rtmp: SocketAddr,
    log: Arc<Mutex<String>>,
    _data: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!(
                "fleetcast-autoscale-{tag}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Edge {
    fn start(ip: IpAddr) -> Self {
        let data = tempdir::Dir::new("edge");
        let mut child = Command::new(media_binary())
            .args(["origin", "--rtmp", &format!("{ip}:0")])
            .args(["--http", &format!("{ip}:0")])
            .args(["--admin", &format!("{ip}:8081"), "--data"])
            .arg(&data.0)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting fleetcast-media");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("rtmp="))
                    .and_then(|a| a.parse::<SocketAddr>().ok())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let rtmp = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!(
                    "fleetcast-media on {ip} did not start (is port 8081 on {ip} free?): {}",
                    log.lock().unwrap()
                )
            });
        Self {
            child,
            ip,
            rtmp,
            log,
            _data: data,
        }
    }

    fn url(&self) -> String {
        format!("rtmp://{}/live/show", self.rtmp)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Child processes killed when dropped (publishers, viewers).
#[derive(Default)]
struct Procs(Vec<Child>);

impl Procs {
    fn publish(&mut self, url: &str) {
        require("ffmpeg");
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100"])
            .args(["-map", "0:v", "-map", "1:a", "-t", "600"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args(["-g", "25", "-c:a", "aac", "-f", "flv", url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting ffmpeg");
        self.0.push(child);
    }

    fn watch(&mut self, url: &str, n: usize) {
        require("rtmpdump");
        for _ in 0..n {
            let child = Command::new("rtmpdump")
                .args(["--live", "-q", "-r", url, "-o", "/dev/null"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting rtmpdump");
            self.0.push(child);
        }
    }

    fn stop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.0.clear();
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn stats_of(edge: &Edge) -> anyhow::Result<serde_json::Value> {
    let body = tokio::task::spawn_blocking({
        let addr = SocketAddr::new(edge.ip, 8081);
        move || -> anyhow::Result<String> {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /api/stats HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        }
    })
    .await??;
    let json = body.split("\r\n\r\n").nth(1).unwrap_or_default();
    Ok(serde_json::from_str(json)?)
}

async fn wait_viewers(edge: &Edge, n: u64) {
    wait::until(&format!("{n} viewers on {}", edge.ip), WAIT, || async {
        let s = stats_of(edge).await?;
        Ok((s["viewers"].as_u64() == Some(n)).then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nserver log:\n{}", edge.log.lock().unwrap()));
}

async fn replicas(api: &Api<Deployment>) -> Option<i32> {
    api.get_opt(DEPLOYMENT)
        .await
        .ok()
        .flatten()
        .and_then(|d| d.spec.and_then(|s| s.replicas))
}

async fn wait_replicas(api: &Api<Deployment>, want: i32, what: &str) {
    wait::until(what, WAIT, || async {
        Ok((replicas(api).await == Some(want)).then_some(()))
    })
    .await
    .unwrap();
}

async fn pool_status(mcs: &Api<MediaCluster>) -> Option<PoolAutoscalingStatus> {
    let mc = mcs.get("live").await.ok()?;
    mc.status?
        .edges
        .into_iter()
        .find(|p| p.name == "london")?
        .autoscaling
}

/// Plays the kubelet for `ip`: the first pool pod without an IP gets it.
async fn run_pod_on(pods: &Api<Pod>, ip: IpAddr) -> String {
    let name = wait::until("a pool pod without an address", WAIT, || async {
        let list = pods.list(&ListParams::default().labels(POOL_PODS)).await?;
        Ok(list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_none())
            .map(ResourceExt::name_any))
    })
    .await
    .unwrap();
    let status = json!({ "status": {
        "phase": "Running",
        "podIP": ip.to_string(),
        "podIPs": [{ "ip": ip.to_string() }],
        "conditions": [{ "type": "Ready", "status": "True" }],
    }});
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    name
}

async fn events(client: &Client, ns: &str, reason: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn viewers_scale_the_pool_up_and_down_and_missing_stats_hold_it() {
    let media = media_binary();
    assert!(media.exists());
    let cluster = Cluster::shared().await.expect("test cluster");
    install_crd(&cluster).await.expect("CRD installed");
    let ns = cluster.namespace("autoscale").await.expect("namespace");
    let client = cluster.client().await.expect("client");
    let settings = Settings {
        interval: Duration::from_secs(1),
        ..Settings::default()
    };
    let controller = InProcess::start_with(client.clone(), ns.name(), settings);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    let mcs: Api<MediaCluster> = Api::namespaced(client.clone(), ns.name());
    create(&client, ns.name(), &mc_from_yaml(MC)).await.unwrap();

    // The Deployment is created without replicas; the reconciler has the autoscaler take them
    // over at minReplicas as soon as it is created.
    wait_replicas(&deployments, 2, "the pool at minReplicas 2").await;
    let d = deployments.get(DEPLOYMENT).await.unwrap();
    let owners: Vec<String> = d
        .managed_fields()
        .iter()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(owners, [AUTOSCALER], "spec.replicas has one owner");

    // Two edges run, each with a publisher.
    let (a, b) = loopback_net();
    let ip = |n: u8| IpAddr::from([127, a, b, n]);
    let mut edges = vec![Edge::start(ip(1)), Edge::start(ip(2))];
    let mut publishers = Procs::default();
    for e in &edges {
        publishers.publish(&e.url());
    }
    let pod_a = run_pod_on(&pods, edges[0].ip).await;
    let pod_b = run_pod_on(&pods, edges[1].ip).await;

    // 3 viewers on each edge, target 2 per pod: ceil(2 * 3/2) = 3 replicas.
    let mut viewers = Procs::default();
    for e in &edges {
        wait::until("the stream to be live", WAIT, || async {
            Ok((stats_of(e).await?["streams"].as_u64() == Some(1)).then_some(()))
        })
        .await
        .unwrap();
        viewers.watch(&e.url(), 3);
    }
    for e in &edges {
        wait_viewers(e, 3).await;
    }
    wait_replicas(&deployments, 3, "the pool to grow to 3").await;
    let status = wait::until("status of the scale-up", WAIT, || async {
        Ok(pool_status(&mcs)
            .await
            .filter(|s| s.last_scale.as_ref().is_some_and(|l| l.to_replicas == 3)))
    })
    .await
    .unwrap();
    let last = status.last_scale.clone().unwrap();
    assert_eq!((last.from_replicas, last.to_replicas), (2, 3), "{status:?}");
    assert_eq!(last.reason, "MetricAboveTarget", "{status:?}");
    wait::until("a ScaledUp Event for 2 -> 3", WAIT, || async {
        let notes = events(&client, ns.name(), "ScaledUp").await;
        Ok(notes
            .iter()
            .any(|n| n.contains("london: 2 -> 3 replicas (MetricAboveTarget"))
            .then_some(()))
    })
    .await
    .unwrap();
    // Viewers and egress per pool and in total (egress once the edges'
    // 10 s rate has samples with the viewers in them).
    wait::until("viewers and egress in the status", WAIT, || async {
        let s = mcs.get("live").await?.status.unwrap_or_default();
        let london = s.edges.iter().find(|p| p.name == "london");
        Ok((s.viewers == Some(6)
            && london.is_some_and(|p| {
                p.viewers == Some(6) && p.egress_bits_per_second.unwrap_or(0) > 0
            }))
        .then_some(()))
    })
    .await
    .unwrap();
    // The reconciler's counts sit in the same entry of status.edges.
    wait::until(
        "the reconciler's count of 3 beside the viewers",
        WAIT,
        || async {
            let s = mcs.get("live").await?.status.unwrap_or_default();
            Ok(s.edges
                .iter()
                .find(|p| p.name == "london")
                .filter(|p| p.replicas.desired_replicas == 3 && p.viewers.is_some())
                .map(|_| ()))
        },
    )
    .await
    .unwrap();

    // The new pod starts too (a third edge): 3+3+0 over 3 pods is on target.
    edges.push(Edge::start(ip(3)));
    publishers.publish(&edges[2].url());
    let pod_c = run_pod_on(&pods, edges[2].ip).await;
    wait::until("the third stream to be live", WAIT, || async {
        Ok((stats_of(&edges[2]).await?["streams"].as_u64() == Some(1)).then_some(()))
    })
    .await
    .unwrap();

    // The audience drops to 0, 1 and 2 viewers (average 1, target 2): the
    // pool shrinks to 2 after the 3 s window, and the emptiest edge goes.
    let emptied = k8s_openapi::jiff::Timestamp::now();
    viewers.stop();
    viewers.watch(&edges[1].url(), 1);
    viewers.watch(&edges[2].url(), 2);
    wait_viewers(&edges[0], 0).await;
    wait_viewers(&edges[1], 1).await;
    wait_viewers(&edges[2], 2).await;
    // First the window holds the pool at 3...
    wait::until("the scale-down to be stabilized", WAIT, || async {
        let s = pool_status(&mcs).await;
        Ok(s.filter(|s| s.reason == "ScaleDownStabilized" && s.current_replicas == 3))
    })
    .await
    .unwrap();
    assert_eq!(replicas(&deployments).await, Some(3));
    // ... then it shrinks.
    wait_replicas(&deployments, 2, "the pool to shrink to 2").await;
    // The status is written after the Deployment's patch.
    let status = wait::until("status of the scale-down", WAIT, || async {
        Ok(pool_status(&mcs)
            .await
            .filter(|s| s.last_scale.as_ref().is_some_and(|l| l.to_replicas == 2)))
    })
    .await
    .unwrap();
    let last = status.last_scale.clone().unwrap();
    assert_eq!((last.from_replicas, last.to_replicas), (3, 2), "{status:?}");
    // Not before the window had only low recommendations: the last high one came
    // at most one 1 s tick before the viewers left; times have second resolution.
    assert!(
        last.time.0.as_second() >= emptied.as_second() + 3 - 2,
        "scaled down at {} though the viewers left at {emptied}",
        last.time.0
    );
    let down_events = events(&client, ns.name(), "ScaledDown").await;
    assert!(
        down_events
            .iter()
            .any(|n| n.contains("london: 3 -> 2 replicas")),
        "{down_events:?}"
    );
    // The deletion costs followed the viewers, and the ReplicaSet removed the
    // pod of the edge without viewers (unscheduled pods go at once).
    wait::until("the emptiest edge's pod to be removed", WAIT, || async {
        Ok(pods.get_opt(&pod_a).await?.is_none().then_some(()))
    })
    .await
    .unwrap();
    let cost = |name: String| {
        let pods = pods.clone();
        async move {
            pods.get(&name)
                .await
                .unwrap()
                .annotations()
                .get(DELETION_COST_ANNOTATION)
                .cloned()
        }
    };
    assert_eq!(cost(pod_b.clone()).await.as_deref(), Some("1"));
    assert_eq!(cost(pod_c.clone()).await.as_deref(), Some("2"));

    // Back up to 3, then every edge's stats go missing: no scale-down however long.
    viewers.stop();
    for e in &edges[1..] {
        viewers.watch(&e.url(), 3);
    }
    wait_replicas(&deployments, 3, "the pool to grow to 3 again").await;
    viewers.stop();
    publishers.stop();
    for e in &mut edges {
        e.stop();
    }
    let evaluations = || controller.metrics.autoscale_evaluations.get();
    let before = evaluations();
    // Six evaluations at one a second span twice the scale-down window.
    wait::until("six evaluations without stats", WAIT, || async {
        Ok((evaluations() >= before + 6).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(
        replicas(&deployments).await,
        Some(3),
        "no scale-down on missing stats"
    );
    let status = pool_status(&mcs).await.unwrap();
    assert_eq!(status.reason, "NoMetrics", "{status:?}");
    assert_eq!(status.desired_replicas, 3, "{status:?}");
    drop(controller);
}

const MC_BANDWIDTH: &str = r"
apiVersion: fleetcast.io/v1alpha1
kind: MediaCluster
metadata: { name: live }
spec:
  origin: { replicas: 1 }
  edges:
    - name: london
      autoscaling:
        minReplicas: 1
        maxReplicas: 4
        metric: bandwidth
        target: 1
";

#[tokio::test(flavor = "multi_thread")]
async fn egress_scales_a_bandwidth_pool() {
    let cluster = Cluster::shared().await.expect("test cluster");
    install_crd(&cluster).await.expect("CRD installed");
    let ns = cluster.namespace("autoscale-bw").await.expect("namespace");
    let client = cluster.client().await.expect("client");
    let settings = Settings {
        interval: Duration::from_secs(1),
        ..Settings::default()
    };
    let _controller = InProcess::start_with(client.clone(), ns.name(), settings);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    let mcs: Api<MediaCluster> = Api::namespaced(client.clone(), ns.name());
    create(&client, ns.name(), &mc_from_yaml(MC_BANDWIDTH))
        .await
        .unwrap();
    wait::until("the pool's Deployment", WAIT, || async {
        Ok(deployments.get_opt(DEPLOYMENT).await?.map(|_| ()))
    })
    .await
    .unwrap();

    // One edge (its own loopback address, apart from the other test's) with
    // ten viewers: a few Mbit/s of egress against a target of 1 Mbit/s a pod.
    let (a, b) = loopback_net();
    let edge = Edge::start(IpAddr::from([127, a, b, 11]));
    let mut procs = Procs::default();
    procs.publish(&edge.url());
    run_pod_on(&pods, edge.ip).await;
    wait::until("the stream to be live", WAIT, || async {
        Ok((stats_of(&edge).await?["streams"].as_u64() == Some(1)).then_some(()))
    })
    .await
    .unwrap();
    procs.watch(&edge.url(), 10);
    wait_viewers(&edge, 10).await;
    let bps = wait::until("egress over 1.2 Mbit/s", WAIT, || async {
        let bps = stats_of(&edge).await?["egress_bits_per_second"]
            .as_u64()
            .unwrap_or(0);
        Ok((bps > 1_200_000).then_some(bps))
    })
    .await
    .unwrap();

    let status = wait::until("a scale-up on egress", WAIT, || async {
        Ok(pool_status(&mcs)
            .await
            .filter(|s| s.last_scale.as_ref().is_some_and(|l| l.to_replicas > 1)))
    })
    .await
    .unwrap();
    assert_eq!(
        status.metric,
        fleetcast_operator::crd::v1alpha1::ScalingMetric::Bandwidth
    );
    let last = status.last_scale.clone().unwrap();
    assert_eq!(last.from_replicas, 1, "{status:?}");
    // Above target; the policies or maxReplicas may be what bounds the step.
    assert!(
        ["MetricAboveTarget", "ScaleUpLimit", "TooManyReplicas"].contains(&last.reason.as_str()),
        "{status:?}"
    );
    assert!(
        status.current_average.unwrap_or(0.0) > 1.0,
        "Mbit/s per pod: {status:?} (the edge said {bps} bit/s)"
    );
    assert!(replicas(&deployments).await.unwrap_or(0) > 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_that_becomes_autoscaled_keeps_its_replicas() {
    use futures::StreamExt as _;
    use kube::runtime::{WatchStreamExt as _, watcher};

    let cluster = Cluster::shared().await.expect("test cluster");
    install_crd(&cluster).await.expect("CRD installed");
    let ns = cluster
        .namespace("autoscale-handover")
        .await
        .expect("namespace");
    let client = cluster.client().await.expect("client");
    let settings = Settings {
        interval: Duration::from_secs(1),
        ..Settings::default()
    };
    let controller = InProcess::start_with(client.clone(), ns.name(), settings);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let mcs: Api<MediaCluster> = Api::namespaced(client.clone(), ns.name());
    let fixed = r"
apiVersion: fleetcast.io/v1alpha1
kind: MediaCluster
metadata: { name: live }
spec:
  origin: { replicas: 1 }
  edges:
    - name: london
      replicas: 5
";
    create(&client, ns.name(), &mc_from_yaml(fixed))
        .await
        .unwrap();
    wait_replicas(&deployments, 5, "the fixed pool at 5").await;

    // Every version of the Deployment from now on.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    let watch = tokio::spawn(
        watcher(
            deployments.clone(),
            watcher::Config::default().fields(&format!("metadata.name={DEPLOYMENT}")),
        )
        .applied_objects()
        .for_each(move |d| {
            let recorder = recorder.clone();
            async move {
                if let Ok(d) = d {
                    recorder
                        .lock()
                        .unwrap()
                        .push(d.spec.and_then(|s| s.replicas));
                }
            }
        }),
    );

    // The pool becomes viewer-autoscaled: the autoscaler takes replicas over
    // at 5 (within 2..10) before the reconciler stops writing them.
    let patch = json!({ "spec": { "edges": [{
        "name": "london",
        "replicas": 5,
        "autoscaling": { "minReplicas": 2, "maxReplicas": 10, "metric": "viewers", "target": 100 },
    }]}});
    mcs.patch("live", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait::until("replicas owned by the autoscaler alone", WAIT, || async {
        let d = deployments.get(DEPLOYMENT).await?;
        let owners: Vec<String> = d
            .managed_fields()
            .iter()
            .filter(|m| {
                m.fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
            })
            .filter_map(|m| m.manager.clone())
            .collect();
        let generation_seen = d
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .is_some_and(|g| Some(g) >= d.metadata.generation);
        Ok((owners == [AUTOSCALER] && generation_seen).then_some(()))
    })
    .await
    .unwrap();
    // Three more evaluations of the pool (its pods are Pending: no stats, no change).
    let evaluations = || controller.metrics.autoscale_evaluations.get();
    let before = evaluations();
    wait::until("three evaluations of the pool", WAIT, || async {
        Ok((evaluations() >= before + 3).then_some(()))
    })
    .await
    .unwrap();
    watch.abort();
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|r| *r == Some(5)),
        "replicas must stay 5 through the handover: {seen:?}"
    );
    assert_eq!(replicas(&deployments).await, Some(5));
}
