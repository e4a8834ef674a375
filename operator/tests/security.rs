//! `spec.security` on a real control plane: the Secret volumes and mounts on
//! the workloads, the auth config in the ConfigMaps, and the NetworkPolicies,
//! created owned by the MediaCluster and deleted when the policy is switched off.

// Test crate: panics are the failure reports; kinds are prose in docs.
#![allow(clippy::unwrap_used, clippy::doc_markdown, clippy::too_many_lines)]

mod common;

use common::{InProcess, WAIT, create, install_crd, mc_from_yaml};
use fleetcast_media::config::Config;
use fleetcast_operator::build::names;
use fleetcast_operator::crd::MediaCluster;
use fleetcast_testkit::cluster::Cluster;
use fleetcast_testkit::wait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

const SECURE: &str = r"
apiVersion: fleetcast.io/v1alpha1
kind: MediaCluster
metadata: { name: live }
spec:
  edges: [ { name: london } ]
  security:
    publishKeys: { secretName: stream-keys }
    publishWebhook: { url: 'http://auth.video.svc:8000/publish', timeoutMs: 1500 }
    playbackSigning: { secretName: play-signing, key: hmac }
    networkPolicy:
      enabled: true
      publishers: [ { ipBlock: { cidr: 203.0.113.0/24 } } ]
      viewers: [ { namespaceSelector: { matchLabels: { team: players } } } ]
";

fn secret_mounts(spec: &PodSpec) -> Vec<(String, String, String, bool)> {
    let volumes = spec.volumes.clone().unwrap_or_default();
    let mut out: Vec<_> = spec.containers[0]
        .volume_mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            let v = volumes.iter().find(|v| v.name == m.name)?;
            let secret = v.secret.as_ref()?;
            assert_eq!(secret.default_mode, Some(0o440), "{}", m.name);
            Some((
                m.name.clone(),
                secret.secret_name.clone().unwrap_or_default(),
                m.mount_path,
                m.read_only == Some(true),
            ))
        })
        .collect();
    out.sort();
    out
}

fn mount(name: &str, secret: &str, path: &str) -> (String, String, String, bool) {
    (name.to_owned(), secret.to_owned(), path.to_owned(), true)
}

#[tokio::test]
async fn security_spec_mounts_secrets_and_owns_network_policies() {
    let cluster = Cluster::shared().await.expect("test cluster");
    install_crd(&cluster).await.expect("CRD installed");
    let ns = cluster.namespace("op-security").await.expect("namespace");
    let client = cluster.client().await.expect("client");
    let _operator = InProcess::start(client.clone(), &ns.name);
    let mc = create(&client, &ns.name, &mc_from_yaml(SECURE))
        .await
        .unwrap();
    let uid = mc.metadata.uid.clone().unwrap();

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns.name);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let children = ListParams::default().labels(&names::children_selector("live"));
    wait::until("workloads and NetworkPolicies", WAIT, || {
        let (d, p, children) = (deployments.clone(), policies.clone(), children.clone());
        async move {
            let workloads = d.list(&children).await?.items.len();
            let mut policies: Vec<String> = p
                .list(&children)
                .await?
                .items
                .iter()
                .map(ResourceExt::name_any)
                .collect();
            policies.sort();
            Ok((workloads == 2 && policies == ["live-edges", "live-origin"]).then_some(()))
        }
    })
    .await
    .unwrap();

    let pod = |d: Deployment| d.spec.unwrap().template.spec.unwrap();
    let origin = pod(deployments.get("live-origin").await.unwrap());
    assert_eq!(
        secret_mounts(&origin),
        vec![
            mount(
                "play-signing",
                "play-signing",
                "/etc/fleetcast/play-signing"
            ),
            mount("publish-keys", "stream-keys", "/etc/fleetcast/publish-keys"),
        ]
    );
    let edge = pod(deployments.get("live-edge-london").await.unwrap());
    assert_eq!(
        secret_mounts(&edge),
        vec![mount(
            "play-signing",
            "play-signing",
            "/etc/fleetcast/play-signing"
        )]
    );
    for spec in [&origin, &edge] {
        let sc = spec.containers[0].security_context.clone().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            spec.security_context
                .clone()
                .unwrap()
                .seccomp_profile
                .unwrap()
                .type_,
            "RuntimeDefault"
        );
    }
    let config = |cm: ConfigMap| Config::from_yaml_str(&cm.data.unwrap()["config.yaml"]).unwrap();
    let origin_auth = config(config_maps.get("live-origin").await.unwrap()).auth;
    assert_eq!(
        origin_auth.publish_webhook.unwrap().url,
        "http://auth.video.svc:8000/publish"
    );
    assert!(origin_auth.publish_keys_dir.is_some());
    assert!(
        config(config_maps.get("live-edge-london").await.unwrap())
            .auth
            .play_signing_secret_file
            .is_some()
    );

    // What the API server stored: the publishers' CIDR on the origins' RTMP port.
    let origin_policy = policies.get("live-origin").await.unwrap();
    assert!(
        origin_policy
            .owner_references()
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true))
    );
    let ingress = origin_policy.spec.unwrap().ingress.unwrap();
    let first = serde_json::to_value(&ingress[0]).unwrap();
    assert_eq!(
        first,
        json!({"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
               "ports": [{"port": "rtmp", "protocol": "TCP"}]})
    );

    // Switching the policy off deletes both.
    let mcs: Api<MediaCluster> = Api::namespaced(client.clone(), &ns.name);
    mcs.patch(
        "live",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"security": {"networkPolicy": {"enabled": false}}}})),
    )
    .await
    .unwrap();
    wait::until("NetworkPolicies deleted", WAIT, || {
        let (p, children) = (policies.clone(), children.clone());
        async move { Ok(p.list(&children).await?.items.is_empty().then_some(())) }
    })
    .await
    .unwrap();
    // The workloads stay.
    assert!(deployments.get_opt("live-origin").await.unwrap().is_some());

    // The example with every switch is one the API server accepts.
    let example =
        std::fs::read_to_string(fleetcast_testkit::workspace_root().join("examples/secure.yaml"))
            .unwrap();
    create(&client, &ns.name, &mc_from_yaml(&example))
        .await
        .expect("examples/secure.yaml is accepted");
    wait::until("the example's NetworkPolicies", WAIT, || {
        let p = policies.clone();
        let children = ListParams::default().labels(&names::children_selector("secure"));
        async move { Ok((p.list(&children).await?.items.len() == 2).then_some(())) }
    })
    .await
    .unwrap();
}
