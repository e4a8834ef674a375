//! On a cluster without the `MediaCluster` CRD, `fleetcast-operator run` exits
//! at once with a message that says how to install it, instead of retrying.
//! Runs on a private control plane: the shared one has the CRD installed by
//! the other tests, and removing it there would delete their `MediaCluster`s.

use std::process::Command;

use fleetcast_testkit::cluster::PrivateCluster;

#[tokio::test]
async fn run_without_the_crd_exits_with_install_instructions() {
    let private = PrivateCluster::start("nocrd").await.unwrap();
    let cluster = private.cluster();

    // The cluster is real and serving: the check below is about the CRD only.
    let out = cluster
        .kubectl()
        .args(["get", "ns", "default"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(env!("CARGO_BIN_EXE_fleetcast-operator"))
        .args(["run", "--http-addr", "127.0.0.1:0", "--log-format", "text"])
        .env("KUBECONFIG", cluster.kubeconfig())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the operator ran without its CRD: {stderr}"
    );
    assert!(
        stderr.contains("is not installed") && stderr.contains("kubectl apply -f crds/"),
        "the message does not say how to install the CRD: {stderr}"
    );
}
