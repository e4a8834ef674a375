//! The binary refuses, before connecting anywhere, targets outside loopback
//! and the `--allow-net` networks, and `--allow-net` networks that are not
//! private; each with an error that says why.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;

fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_media-bench"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "media-bench {args:?} was not refused"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn targets_outside_loopback_and_allowed_networks_are_refused() {
    let err = refused(&["play", "--url", "rtmp://10.96.0.10:1935/live/a"]);
    assert!(
        err.contains("10.96.0.10 is not a loopback address") && err.contains("--allow-net"),
        "{err}"
    );
    let err = refused(&[
        "first-frame",
        "--url",
        "http://10.97.0.10:8080/live/a.flv",
        "--allow-net",
        "10.96.0.0/16",
        "--allow-net",
        "10.244.0.0/16",
    ]);
    assert!(
        err.contains("nor inside --allow-net 10.96.0.0/16, 10.244.0.0/16"),
        "{err}"
    );
    let err = refused(&[
        "play",
        "--url",
        "rtmp://8.8.8.8/live/a",
        "--allow-net",
        "8.8.8.0/24",
    ]);
    assert!(err.contains("not inside a private range"), "{err}");
    let err = refused(&[
        "play",
        "--url",
        "rtmp://127.0.0.1/live/a",
        "--allow-net",
        "10.96.0.0",
    ]);
    assert!(err.contains("--allow-net"), "{err}");
}
