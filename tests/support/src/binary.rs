//! A binary of another workspace package, built for a test that runs it as a
//! process: `cargo test -p A` does not build package B's binaries, and a test
//! must run the current code, not whatever an earlier build left.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow, bail};

/// Builds `bin` of `package` with the profile and target dir of the running
/// test executable (`TARGET/<profile>/deps/NAME-HASH`) and returns its path.
/// Cargo holds its build lock only while building, not while tests run, so
/// this works from inside `cargo test`.
pub fn build(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the test executable")?;
    let layout = || {
        anyhow!(
            "cannot tell the target dir from the test executable {}",
            exe.display()
        )
    };
    let profile_dir = exe.parent().and_then(Path::parent).ok_or_else(layout)?;
    let target = profile_dir.parent().ok_or_else(layout)?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => return Err(layout()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "-p", package, "--bin", bin, "--profile", profile])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(crate::workspace_root())
        .output()
        .with_context(|| format!("running cargo build -p {package}"))?;
    if !out.status.success() {
        bail!(
            "building {package}'s {bin} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = profile_dir.join(bin);
    if !path.exists() {
        bail!("{} is missing after building it", path.display());
    }
    Ok(path)
}
