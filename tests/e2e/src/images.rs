//! The images the tests run: Fleetcast's (built by `tools/image/fleetcast`,
//! the same as `make images`) and the node's own (pause, `CoreDNS`, imported by
//! `tests/cluster/up --node`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, anyhow, bail};
use fleetcast_testkit::cluster::Cluster;
use fleetcast_testkit::workspace_root;
use tokio::process::Command;
use tokio::sync::OnceCell;

/// Fleetcast's images as imported into the node.
#[derive(Clone, Debug)]
pub struct Images {
    /// `ghcr.io/fleetcast/fleetcast-operator:VERSION`.
    pub operator: String,
    /// `ghcr.io/fleetcast/fleetcast-media:VERSION` (the CRD's default image).
    pub media: String,
    /// The tag both carry (the workspace version).
    pub tag: String,
}

static IMAGES: OnceCell<Result<Images, String>> = OnceCell::const_new();

/// Builds the images (cached by `tools/image/fleetcast`) and imports them
/// into the node's containerd, once per test process. On a user's own
/// cluster (`KUBECONFIG`), only builds: loading them is theirs to do.
pub async fn ensure(cluster: &Cluster) -> anyhow::Result<Images> {
    IMAGES
        .get_or_init(|| async {
            build_and_import(cluster)
                .await
                .map_err(|e| format!("{e:#}"))
        })
        .await
        .clone()
        .map_err(|e| anyhow!("Fleetcast's images are not available: {e}"))
}

/// Archives already built elsewhere (`make images` with another target dir):
/// the directory named by this variable is used instead of building.
pub const PREBUILT_ENV: &str = "FLEETCAST_E2E_IMAGES_DIR";

async fn build_and_import(cluster: &Cluster) -> anyhow::Result<Images> {
    let root = workspace_root();
    let stdout = match std::env::var_os(PREBUILT_ENV) {
        Some(dir) => {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&dir)
                .with_context(|| format!("reading {PREBUILT_ENV}={}", dir.to_string_lossy()))?
            {
                names.push(entry?.path().to_string_lossy().into_owned());
            }
            names.join("\n")
        }
        None => build(&root).await?,
    };
    import_archives(cluster, &root, &stdout).await
}

async fn build(root: &Path) -> anyhow::Result<String> {
    let out = Command::new(root.join("tools/image/fleetcast"))
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running tools/image/fleetcast")?;
    if !out.status.success() {
        bail!(
            "tools/image/fleetcast failed ({}):\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 30)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn import_archives(cluster: &Cluster, root: &Path, stdout: &str) -> anyhow::Result<Images> {
    let archives: Vec<PathBuf> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| {
            Path::new(l)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("tar"))
        })
        .map(|l| root.join(l))
        .collect();
    let find = |name: &str| {
        archives
            .iter()
            .find(|a| {
                a.file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| f.starts_with(name))
            })
            .cloned()
            .ok_or_else(|| anyhow!("tools/image/fleetcast printed no {name} archive:\n{stdout}"))
    };
    let operator_archive = find("fleetcast-operator-")?;
    let media_archive = find("fleetcast-media-")?;
    let tag = operator_archive
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("fleetcast-operator-"))
        .ok_or_else(|| anyhow!("cannot read the tag from {}", operator_archive.display()))?
        .to_owned();
    if let Some(node) = cluster.node() {
        for archive in [&operator_archive, &media_archive] {
            import(&node.containerd_address, archive).await?;
        }
    }
    Ok(Images {
        operator: format!("ghcr.io/fleetcast/fleetcast-operator:{tag}"),
        media: format!("ghcr.io/fleetcast/fleetcast-media:{tag}"),
        tag,
    })
}

/// `ctr -n k8s.io images import ARCHIVE` on the node's containerd.
pub async fn import(containerd: &Path, archive: &Path) -> anyhow::Result<()> {
    let out = Command::new("ctr")
        .arg("--address")
        .arg(containerd)
        .args(["--namespace", "k8s.io", "images", "import"])
        .arg(archive)
        .stdin(Stdio::null())
        .output()
        .await
        .context("running ctr (tests/setup installs containerd)")?;
    if !out.status.success() {
        bail!(
            "ctr images import {} failed: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
