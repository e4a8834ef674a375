//! Fleetcast end to end on real pods: `helm install` the chart, apply a
//! `MediaCluster`, publish a test pattern to the ingest Service, play it
//! through every edge pool's Service over RTMP, HTTP-FLV and HLS, lose an
//! edge pod, delete the `MediaCluster`, `helm uninstall`.
//!
//! One test, in order, because each step builds on the one before; every
//! wait is bounded and says what it waited for.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use fleetcast_e2e::POD_PATIENCE;
use fleetcast_e2e::images;
use fleetcast_e2e::kube_util::{self, describe_pods, service_address};
use fleetcast_e2e::load;
use fleetcast_e2e::media::{self, Probe};
use fleetcast_testkit::cluster::Cluster;
use fleetcast_testkit::{wait, workspace_root};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use serde_json::Value;

const MC: &str = "e2e";
const STREAM: &str = "live/e2e";
/// The edge pools of the test `MediaCluster`; `a` has two pods so one can be
/// lost while the other serves.
const POOLS: [(&str, usize); 3] = [("a", 2), ("b", 1), ("s", 1)];

fn media_cluster(pull_policy: &str, b_cpu: &str) -> String {
    format!(
        r"apiVersion: fleetcast.io/v1alpha1
kind: MediaCluster
metadata:
  name: {MC}
spec:
  image:
    pullPolicy: {pull_policy}
  origin:
    replicas: 2
    resources:
      requests: {{ cpu: 50m, memory: 64Mi }}
  edges:
    - name: a
      replicas: 2
      upstream: origin
      resources:
        requests: {{ cpu: 50m, memory: 64Mi }}
    - name: b
      replicas: 1
      upstream: origin
      resources:
        requests: {{ cpu: {b_cpu}, memory: 64Mi }}
    - name: s
      upstream: origin
      autoscaling:
        minReplicas: 1
        maxReplicas: 3
        metric: viewers
        target: 2
        behavior:
          scaleDown:
            stabilizationWindowSeconds: 0
      drain: {{ seconds: 1 }}
      resources:
        requests: {{ cpu: 50m, memory: 64Mi }}
"
    )
}

/// Runs a tool, failing with its output.
async fn run(mut command: std::process::Command, what: &str) -> anyhow::Result<String> {
    command.stdin(Stdio::null());
    let out = tokio::process::Command::from(command)
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn kubectl_apply(cluster: &Cluster, ns: &str, yaml: &str) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::from(cluster.kubectl())
        .args(["-n", ns, "apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl apply")?;
    let mut stdin = child.stdin.take().context("kubectl stdin")?;
    tokio::io::AsyncWriteExt::write_all(&mut stdin, yaml.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The `MediaCluster` as JSON (`kubectl get -o json`).
async fn get_mc(cluster: &Cluster, ns: &str) -> anyhow::Result<Value> {
    let mut command = cluster.kubectl();
    command.args(["-n", ns, "get", "mediacluster", MC, "-o", "json"]);
    let out = run(command, "kubectl get mediacluster").await?;
    Ok(serde_json::from_str(&out)?)
}

fn condition<'a>(mc: &'a Value, kind: &str) -> Option<&'a Value> {
    mc.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn instance_selector() -> String {
    format!("app.kubernetes.io/instance={MC}")
}

/// Plays the stream through `url` until a frame arrives (HLS needs its
/// first segments cut; an edge pulls from the origin on the first viewer).
async fn play(url: &str, secs: u32) -> anyhow::Result<Probe> {
    wait::until(
        &format!("{url} to play"),
        Duration::from_secs(90),
        || async {
            let probe = media::probe(url, secs).await?;
            Ok((probe.codec == "h264" && probe.frames > 0).then_some(probe))
        },
    )
    .await
}

async fn pods(client: &Client, ns: &str, selector: &str) -> anyhow::Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    Ok(api
        .list(&ListParams::default().labels(selector))
        .await?
        .items)
}

#[tokio::test]
async fn helm_install_media_cluster_publish_play_lose_an_edge_delete_uninstall()
-> anyhow::Result<()> {
    let cluster = Cluster::with_node().await?;
    let images = images::ensure(&cluster).await?;
    let ns = cluster.namespace("e2e").await?;
    let client = cluster.client().await?;
    let release = format!("fleetcast-{}", ns.name());

    install_chart(&cluster, &client, ns.name(), &release, &images.tag).await?;
    let steps = async {
        let applied = apply_and_wait_ready(&cluster, &client, ns.name()).await?;
        let publisher = publish_and_play_everywhere(&client, ns.name(), applied).await?;
        losing_the_origin_keeps_an_edge_viewer(&client, ns.name()).await?;
        a_change_rolls_only_its_pool(&cluster, &client, ns.name()).await?;
        viewers_scale_a_pool_up_and_down(&cluster, &client, ns.name()).await?;
        lose_an_edge_pod(&client, ns.name()).await?;
        drop(publisher);
        anyhow::Ok(())
    };
    if let Err(e) = steps.await {
        // What the media pods and the operator said is most of what a
        // failure on real pods can be understood from.
        let media = kube_util::pod_logs(cluster.kubectl(), ns.name(), &instance_selector()).await;
        let operator = kube_util::pod_logs(
            cluster.kubectl(),
            ns.name(),
            &format!("app.kubernetes.io/instance={release}"),
        )
        .await;
        let report = kube_util::scheduling_report(&cluster, ns.name(), &instance_selector()).await;
        return Err(e.context(format!(
            "logs of the MediaCluster's pods:\n{media}\nlogs of the operator:\n{operator}\n{report}"
        )));
    }
    delete_media_cluster(&cluster, ns.name()).await?;
    uninstall_chart(&cluster, ns.name(), &release).await
}

/// `helm install` with one operator replica (enough on one node), then
/// `helm test`.
async fn install_chart(
    cluster: &Cluster,
    client: &Client,
    ns: &str,
    release: &str,
    tag: &str,
) -> anyhow::Result<()> {
    let chart = workspace_root().join("charts/fleetcast");
    let mut helm = cluster.helm();
    helm.args(["install", release])
        .arg(&chart)
        .args(["--namespace", ns, "--wait", "--timeout", "5m"])
        .args(["--set", "replicas=1", "--set", "image.pullPolicy=Never"])
        .args(["--set", "extraArgs={--autoscale-interval-secs=2}"])
        .args(["--set", &format!("image.tag={tag}")]);
    let selector = format!("app.kubernetes.io/instance={release}");
    let started = Instant::now();
    if let Err(e) = run(helm, "helm install").await {
        return Err(e.context(release_pods_report(cluster, client, ns, &selector).await?));
    }
    eprintln!("e2e: helm install --wait took {:?}", started.elapsed());
    // The chart's own check: a pod that asks the operator's Service for
    // /healthz through the cluster DNS.
    let mut test = cluster.helm();
    test.args(["test", release, "--namespace", ns, "--timeout", "3m"]);
    if let Err(e) = run(test, "helm test").await {
        return Err(e.context(release_pods_report(cluster, client, ns, &selector).await?));
    }
    eprintln!("e2e: helm test passed");
    Ok(())
}

/// The release's pods a line each, then why pods may not start.
async fn release_pods_report(
    cluster: &Cluster,
    client: &Client,
    ns: &str,
    selector: &str,
) -> anyhow::Result<String> {
    let release = pods(client, ns, selector).await?;
    let report = kube_util::scheduling_report(cluster, ns, selector).await;
    Ok(format!(
        "pods of the release:\n{}\n{report}",
        describe_pods(&release)
    ))
}

/// Applies the `MediaCluster`; its pods become Ready and its status says so.
/// Returns when it was applied.
async fn apply_and_wait_ready(
    cluster: &Cluster,
    client: &Client,
    ns: &str,
) -> anyhow::Result<Instant> {
    let applied = Instant::now();
    kubectl_apply(cluster, ns, &media_cluster("Never", "50m")).await?;
    let origin_selector = format!("{},app.kubernetes.io/component=origin", instance_selector());
    kube_util::wait_ready_pods(client, ns, &origin_selector, 2, POD_PATIENCE).await?;
    for (pool, replicas) in POOLS {
        let selector = format!("{},fleetcast.io/pool={pool}", instance_selector());
        kube_util::wait_ready_pods(client, ns, &selector, replicas, POD_PATIENCE).await?;
    }
    let mc = wait::until(
        "the MediaCluster's Ready condition to be True",
        POD_PATIENCE,
        || async {
            let mc = get_mc(cluster, ns).await?;
            let ready = condition(&mc, "Ready")
                .and_then(|c| c.get("status"))
                .and_then(Value::as_str)
                == Some("True");
            Ok(ready.then_some(mc))
        },
    )
    .await?;
    let status = mc.get("status").ok_or_else(|| anyhow!("no status"))?;
    assert_eq!(
        status.get("originsReady").and_then(Value::as_str),
        Some("2/2"),
        "{status}"
    );
    assert_eq!(
        status.get("edgesReady").and_then(Value::as_str),
        Some("4/4"),
        "{status}"
    );
    eprintln!(
        "e2e: kubectl apply -> MediaCluster Ready took {:?}",
        applied.elapsed()
    );
    Ok(applied)
}

/// Publishes to the ingest Service and plays through every pool's Service
/// over RTMP, HTTP-FLV and HLS. Returns the publisher, still publishing
/// (and reconnecting when its origin goes away).
async fn publish_and_play_everywhere(
    client: &Client,
    ns: &str,
    applied: Instant,
) -> anyhow::Result<media::Publisher> {
    let (ingest_ip, ingest_port) =
        service_address(client, ns, &format!("{MC}-ingest"), "rtmp").await?;
    let publisher =
        media::publish_reconnecting(format!("rtmp://{ingest_ip}:{ingest_port}/{STREAM}"));
    let mut first_frame = None;
    for (pool, replicas) in POOLS {
        let service = format!("{MC}-edge-{pool}");
        let (ip, rtmp) = service_address(client, ns, &service, "rtmp").await?;
        let (_, http) = service_address(client, ns, &service, "http").await?;
        for url in [
            format!("rtmp://{ip}:{rtmp}/{STREAM}"),
            format!("http://{ip}:{http}/{STREAM}.flv"),
            format!("http://{ip}:{http}/{STREAM}/index.m3u8"),
            // Low-latency HLS (CMAF parts) and the live fMP4 stream the
            // browser player reads.
            format!("http://{ip}:{http}/{STREAM}/ll.m3u8"),
            format!("http://{ip}:{http}/{STREAM}.mp4"),
        ] {
            let probe = play(&url, 3).await?;
            first_frame.get_or_insert_with(|| applied.elapsed());
            eprintln!(
                "e2e: {service}: {url} plays ({} video frames)",
                probe.frames
            );
        }
        // The status page of the edge behind the Service lists the stream
        // it relays, linking to its player page (a pool of one pod: with
        // more, the page may come from a pod no viewer has reached yet).
        if replicas > 1 {
            continue;
        }
        let page = tokio::process::Command::new("curl")
            .args(["-sf", "--max-time", "10", &format!("http://{ip}:{http}/")])
            .output()
            .await
            .context("running curl")?;
        let html = String::from_utf8_lossy(&page.stdout);
        if !html.contains(&format!("/watch/{STREAM}")) {
            bail!("{service}'s status page does not link /watch/{STREAM}: {html}");
        }
    }
    if let Some(t) = first_frame {
        eprintln!("e2e: kubectl apply -> first frame through an edge: {t:?}");
    }
    Ok(publisher)
}

/// Deletes the origin pod that holds the stream while an edge viewer plays
/// it over RTMP; the publisher reconnects through the ingest Service to the
/// other origin and the viewer's session goes on: it keeps receiving media
/// after the origin it was fed from is gone.
async fn losing_the_origin_keeps_an_edge_viewer(client: &Client, ns: &str) -> anyhow::Result<()> {
    let origin_selector = format!("{},app.kubernetes.io/component=origin", instance_selector());
    let origins = pods(client, ns, &origin_selector).await?;
    let mut holder = None;
    for pod in &origins {
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        let out = tokio::process::Command::new("curl")
            .args([
                "-sf",
                "--max-time",
                "3",
                &format!("http://{ip}:8081/api/streams"),
            ])
            .output()
            .await?;
        if String::from_utf8_lossy(&out.stdout).contains("\"name\":\"e2e\"") {
            holder = pod.metadata.name.clone();
        }
    }
    let holder = holder.context("no origin pod lists the stream in /api/streams")?;

    let (ip, rtmp) = service_address(client, ns, &format!("{MC}-edge-b"), "rtmp").await?;
    let mut viewer = media::Viewer::start(&format!("rtmp://{ip}:{rtmp}/{STREAM}"))?;
    viewer
        .wait_packets(60, Duration::from_mins(1))
        .await
        .context("the edge viewer before the origin was deleted")?;
    Api::<Pod>::namespaced(client.clone(), ns)
        .delete(&holder, &DeleteParams::default())
        .await?;
    // The origin is gone once its pod object is; media after that reached
    // the viewer through the other origin.
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait::until(
        &format!("origin pod {holder} to be gone"),
        POD_PATIENCE,
        || async { Ok(pods_api.get_opt(&holder).await?.is_none().then_some(())) },
    )
    .await?;
    let after = viewer
        .wait_packets(1200, Duration::from_mins(2))
        .await
        .context("the edge viewer after its origin was deleted")?;
    eprintln!("e2e: origin {holder} deleted; the edge viewer's session read {after} more packets");
    Ok(())
}

/// Names and UIDs of the pods matching `selector`.
async fn pod_uids(client: &Client, ns: &str, selector: &str) -> anyhow::Result<Vec<String>> {
    let mut uids: Vec<String> = pods(client, ns, selector)
        .await?
        .into_iter()
        .filter_map(|p| p.metadata.uid)
        .collect();
    uids.sort();
    Ok(uids)
}

/// Changing pool b's resources replaces b's pods and leaves the origin's
/// and pool a's pods as they were.
async fn a_change_rolls_only_its_pool(
    cluster: &Cluster,
    client: &Client,
    ns: &str,
) -> anyhow::Result<()> {
    let origin = format!("{},app.kubernetes.io/component=origin", instance_selector());
    let pool_a = format!("{},fleetcast.io/pool=a", instance_selector());
    let pool_b = format!("{},fleetcast.io/pool=b", instance_selector());
    let origin_before = pod_uids(client, ns, &origin).await?;
    let a_before = pod_uids(client, ns, &pool_a).await?;
    let b_before = pod_uids(client, ns, &pool_b).await?;
    kubectl_apply(cluster, ns, &media_cluster("Never", "60m")).await?;
    wait::until(
        "pool b's pods to be replaced and Ready",
        POD_PATIENCE,
        || async {
            let ready = kube_util::wait_ready_pods(client, ns, &pool_b, 1, Duration::from_secs(1))
                .await
                .unwrap_or_default();
            let all = pod_uids(client, ns, &pool_b).await?;
            let replaced = !ready.is_empty()
                && all.len() == 1
                && ready.iter().all(|p| {
                    p.metadata
                        .uid
                        .as_ref()
                        .is_some_and(|u| !b_before.contains(u))
                });
            Ok(replaced.then_some(()))
        },
    )
    .await?;
    assert_eq!(
        pod_uids(client, ns, &origin).await?,
        origin_before,
        "the origin pod was replaced"
    );
    assert_eq!(
        pod_uids(client, ns, &pool_a).await?,
        a_before,
        "pool a's pods were replaced"
    );
    eprintln!("e2e: a change of pool b rolled b's pod only");
    Ok(())
}

/// The `spec.replicas` of a Deployment.
async fn deployment_replicas(client: &Client, ns: &str, name: &str) -> anyhow::Result<i32> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    Ok(api
        .get(name)
        .await?
        .spec
        .and_then(|s| s.replicas)
        .unwrap_or(0))
}

/// `kubectl port-forward` of a Service's port to a loopback port; the load
/// below stays on loopback. Returns the child and the local port.
async fn port_forward(
    cluster: &Cluster,
    ns: &str,
    service: &str,
    port: u16,
) -> anyhow::Result<(tokio::process::Child, u16)> {
    let mut child = tokio::process::Command::from(cluster.kubectl())
        .args(["-n", ns, "port-forward", "--address", "127.0.0.1"])
        .arg(format!("svc/{service}"))
        .arg(format!(":{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("running kubectl port-forward")?;
    let stdout = child.stdout.take().context("port-forward stdout")?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("kubectl port-forward printed nothing in 30 s")??
        .context("kubectl port-forward exited")?;
    // "Forwarding from 127.0.0.1:43567 -> 1935"
    let local = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("cannot read the local port from {line:?}"))?;
    // Keep reading so kubectl never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, local))
}

/// Viewers from the load tool grow pool s (target 2 viewers a pod) from 1 to
/// 3 pods; then the crowd leaves while two viewers stay, and the pool
/// shrinks to 1. The two stayers, spread over the pool by the Service, lose
/// nothing: a stayer on a pod that is drained is told to leave
/// (`UnpublishNotify`) before its pod stops and plays again through the
/// Service; no session is cut.
async fn viewers_scale_a_pool_up_and_down(
    cluster: &Cluster,
    client: &Client,
    ns: &str,
) -> anyhow::Result<()> {
    let bench = fleetcast_testkit::binary::build("fleetcast-media-bench", "media-bench")?;
    let deployment = format!("{MC}-edge-s");
    let selector_s = format!("{},fleetcast.io/pool=s", instance_selector());
    // Through a port-forward every crowd viewer lands on the one pod, whose
    // stats then ask for 3.
    let (_forward, port) = port_forward(cluster, ns, &deployment, 1935).await?;
    let mut crowd = load::start(&bench, &format!("rtmp://127.0.0.1:{port}/{STREAM}"), 6, &[])?;
    crowd
        .wait_playing(Duration::from_mins(1))
        .await
        .context("the crowd")?;
    let grown = wait::until("pool s to grow to 3 replicas", POD_PATIENCE, || async {
        let n = deployment_replicas(client, ns, &deployment).await?;
        Ok((n == 3).then_some(n))
    })
    .await?;
    kube_util::wait_ready_pods(client, ns, &selector_s, 3, POD_PATIENCE).await?;
    eprintln!("e2e: six load-tool viewers grew pool s to {grown} replicas");

    // The stayers come through the Service, so kube-proxy spreads them.
    let (ip, rtmp) = service_address(client, ns, &deployment, "rtmp").await?;
    let allow = format!("{ip}/32");
    let mut stayers = load::start(
        &bench,
        &format!("rtmp://{ip}:{rtmp}/{STREAM}"),
        2,
        &["--allow-net", &allow, "--reconnect", "--stall", "15"],
    )?;
    stayers
        .wait_playing(Duration::from_mins(1))
        .await
        .context("the stayers")?;
    let crowd_report = crowd.stop().await?;
    eprintln!(
        "e2e: the crowd left ({} sessions cut, {} told)",
        crowd_report["ended_cut"], crowd_report["ended_told"]
    );
    let shrunk = wait::until("pool s to shrink to 1 pod", POD_PATIENCE, || async {
        let n = deployment_replicas(client, ns, &deployment).await?;
        let pods = pods(client, ns, &selector_s).await?.len();
        Ok((n == 1 && pods == 1).then_some(n))
    })
    .await?;
    // A stayer told to leave by the last drained pod reconnects after half a
    // second; give it time to play again before ending the run.
    stayers
        .wait_playing(Duration::from_mins(1))
        .await
        .context("the stayers after the scale-down")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = stayers.stop().await?;
    eprintln!(
        "e2e: with the crowd gone pool s shrank to {shrunk} pod; the stayers: {} sessions told to leave, {} moved, {} cut, {} still playing",
        report["ended_told"], report["moved_ok"], report["ended_cut"], report["still_playing"]
    );
    let field = |name: &str| {
        report[name]
            .as_u64()
            .with_context(|| format!("{name} in {report}"))
    };
    if field("ended_cut")? != 0 || field("moved_lost")? != 0 || field("still_playing")? != 2 {
        bail!("a stayer lost its session during the scale-down: {report:#}");
    }
    Ok(())
}

/// Deletes a pod of pool a: new viewers are served through the Service by
/// the other pod at once, and the Deployment replaces the lost one.
async fn lose_an_edge_pod(client: &Client, ns: &str) -> anyhow::Result<()> {
    let selector_a = format!("{},fleetcast.io/pool=a", instance_selector());
    let before = pods(client, ns, &selector_a).await?;
    let victim = before
        .first()
        .and_then(|p| p.metadata.name.clone())
        .context("no pod in pool a")?;
    Api::<Pod>::namespaced(client.clone(), ns)
        .delete(&victim, &DeleteParams::default())
        .await?;
    let (ip, http) = service_address(client, ns, &format!("{MC}-edge-a"), "http").await?;
    let probe = play(&format!("http://{ip}:{http}/{STREAM}.flv"), 2).await?;
    eprintln!(
        "e2e: with {victim} deleted, pool a still plays ({} frames)",
        probe.frames
    );
    let after = kube_util::wait_ready_pods(client, ns, &selector_a, 2, POD_PATIENCE).await?;
    assert!(
        after
            .iter()
            .all(|p| p.metadata.name.as_deref() != Some(victim.as_str())),
        "the deleted pod {victim} is still counted Ready"
    );
    let (ip, rtmp) = service_address(client, ns, &format!("{MC}-edge-a"), "rtmp").await?;
    play(&format!("rtmp://{ip}:{rtmp}/{STREAM}"), 2).await?;
    Ok(())
}

/// Deleting the `MediaCluster` removes everything it made.
async fn delete_media_cluster(cluster: &Cluster, ns: &str) -> anyhow::Result<()> {
    let mut delete = cluster.kubectl();
    delete.args([
        "-n",
        ns,
        "delete",
        "mediacluster",
        MC,
        "--wait=true",
        "--timeout=120s",
    ]);
    run(delete, "kubectl delete mediacluster").await?;
    wait::until(
        "every object of the MediaCluster to be gone",
        POD_PATIENCE,
        || async {
            let mut get = cluster.kubectl();
            get.args(["-n", ns, "get", "deploy,sts,svc,cm,pdb,hpa,pods", "-l"])
                .arg(instance_selector())
                .args(["-o", "name"]);
            let left = run(get, "kubectl get").await?;
            Ok(left.trim().is_empty().then_some(()))
        },
    )
    .await
}

/// `helm uninstall` leaves no object of the release behind.
async fn uninstall_chart(cluster: &Cluster, ns: &str, release: &str) -> anyhow::Result<()> {
    let mut uninstall = cluster.helm();
    uninstall.args([
        "uninstall",
        release,
        "--namespace",
        ns,
        "--wait",
        "--timeout",
        "3m",
    ]);
    run(uninstall, "helm uninstall").await?;
    let release_selector = format!("app.kubernetes.io/instance={release}");
    wait::until(
        "every object of the release to be gone",
        POD_PATIENCE,
        || async {
            let mut get = cluster.kubectl();
            get.args([
                "get",
                "-A",
                "deploy,rs,pods,svc,cm,sa,role,rolebinding,clusterrole,clusterrolebinding,pdb",
                "-l",
            ])
            .arg(&release_selector)
            .args(["-o", "name"]);
            let left = run(get, "kubectl get").await?;
            Ok(left.trim().is_empty().then_some(()))
        },
    )
    .await
}
