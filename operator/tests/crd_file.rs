//! The checked-in CRD must be exactly what the Rust types generate.

use std::path::Path;

use fleetcast_operator::crd::{CRD_PATH, crd_yaml};

#[test]
fn checked_in_crd_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CRD_PATH);
    let on_disk = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let generated = crd_yaml().expect("CRD renders");
    assert!(
        on_disk == generated,
        "{CRD_PATH} is out of date with the MediaCluster types; regenerate it with\n\n    cargo run -p fleetcast-operator -- crd > {CRD_PATH}\n"
    );
}
