//! Every manifest in examples/ is a `MediaCluster` the builders turn into children.

use std::path::Path;

use fleetcast_operator::build::{self, Inputs, Kind};
use fleetcast_operator::crd::MediaCluster;

#[test]
fn examples_parse_and_build() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut mc: MediaCluster =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        mc.metadata.namespace = Some("default".into());
        mc.metadata.uid = Some("00000000-0000-4000-8000-000000000000".into());
        let desired = build::desired(&mc, &Inputs::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for pool in &mc.spec.edges {
            let name = format!(
                "{}-edge-{}",
                mc.metadata.name.as_deref().unwrap(),
                pool.name
            );
            assert!(
                desired.get(Kind::Deployment, &name).is_some(),
                "{}: {name}",
                path.display()
            );
        }
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(
        seen.iter().any(|f| f == "live.yaml"),
        "examples/live.yaml exists: {seen:?}"
    );
}

#[test]
fn live_example_has_london_and_tokyo() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/live.yaml"),
    )
    .unwrap();
    let mc: MediaCluster = serde_yaml_ng::from_str(&text).unwrap();
    let pools: Vec<&str> = mc.spec.edges.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(pools, ["london", "tokyo"]);
}
