//! tools/image/build, the daemonless image builder behind `make images`: a
//! static binary wrapped by it is a well-formed, reproducible OCI archive that
//! a real containerd (Debian's, started here with its own root, state and
//! socket) imports under the right name and runs as the non-root user, with a
//! read-only `/` and a writable `/tmp`.
//!
//! The binary is a small C program built with musl-gcc -static, so this test
//! does not wait for the release build of the real images (the end-to-end
//! tests run those on a node).

// Test crate: panics are the failure reports.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::doc_markdown,
    clippy::too_many_lines
)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use fleetcast_testkit::{wait, workspace_root};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const NAME: &str = "example.test/fleetcast/whoami:1.2.3";

/// Prints who it runs as, whether / and /tmp are writable, and /etc/passwd.
const WHOAMI_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    printf("uid=%d gid=%d\n", (int)getuid(), (int)getgid());
    printf("tmp=%s\n", open("/tmp/probe", O_CREAT | O_WRONLY, 0600) >= 0 ? "writable" : "no");
    printf("root=%s\n", open("/probe", O_CREAT | O_WRONLY, 0600) >= 0 ? "writable" : "no");
    FILE *f = fopen("/etc/passwd", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) printf("passwd:%s", line);
    return 0;
}
"#;

fn scratch(name: &str) -> PathBuf {
    // Short: containerd's socket path must fit in a sockaddr_un.
    let dir = std::env::temp_dir().join(format!("fc-img-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ok(command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| {
        panic!("starting {command:?}: {e} (make deps installs what the tests need)")
    });
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn build_image(binary: &Path, output: &Path) -> String {
    let mut command = Command::new(workspace_root().join("tools/image/build"));
    command
        .current_dir(workspace_root())
        .args([
            "--label",
            "org.example.test=yes",
            "--port",
            "8080/tcp",
            "-o",
        ])
        .arg(output)
        .arg(binary)
        .arg(NAME);
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "tools/image/build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A containerd of this test's own; stopped (by pid) and its directories removed on drop.
struct Containerd {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl Containerd {
    async fn start(dir: PathBuf) -> Containerd {
        let socket = dir.join("c.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{socket}\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                socket = socket.display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting containerd: {e} (Debian package containerd; make deps installs it)"
                )
            });
        let containerd = Containerd { child, dir, socket };
        let probe = containerd.ctr_command();
        wait::until("containerd answers", Duration::from_secs(30), || {
            let mut version = Command::new(probe.get_program());
            version.args(probe.get_args()).arg("version");
            async move { Ok(version.output()?.status.success().then_some(())) }
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", containerd.log()));
        containerd
    }

    fn ctr_command(&self) -> Command {
        let mut command = Command::new("ctr");
        command.arg("--address").arg(&self.socket);
        command
    }

    fn ctr(&self, args: &[&str]) -> String {
        ok(self.ctr_command().args(args))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // A container left by a failed assertion: its task (and shim) first.
        let _ = self
            .ctr_command()
            .args(["tasks", "kill", "-s", "SIGKILL", "whoami"])
            .output();
        let _ = self
            .ctr_command()
            .args(["tasks", "rm", "-f", "whoami"])
            .output();
        let _ = self
            .ctr_command()
            .args(["containers", "rm", "whoami"])
            .output();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_static_binary_becomes_an_image_containerd_runs_as_non_root() {
    let dir = scratch("build");
    let source = dir.join("whoami.c");
    std::fs::write(&source, WHOAMI_C).unwrap();
    let binary = dir.join("whoami");
    ok(Command::new("musl-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source));

    // Reproducible: two builds to two files are the same bytes; a third run
    // with unchanged inputs keeps the archive.
    let archive = dir.join("whoami.tar");
    build_image(&binary, &archive);
    let again = dir.join("again.tar");
    build_image(&binary, &again);
    assert!(
        std::fs::read(&archive).unwrap() == std::fs::read(&again).unwrap(),
        "two builds of the same inputs differ"
    );
    let third = build_image(&binary, &archive);
    assert!(third.contains("up to date"), "{third}");

    // A dynamically linked binary is refused with the fix.
    let refused = Command::new(workspace_root().join("tools/image/build"))
        .arg("-o")
        .arg(dir.join("ls.tar"))
        .args(["/bin/ls", "example.test/ls:1"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("dynamically linked"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The layout: every blob named by its digest, index -> manifest -> config + layer.
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    ok(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout));
    assert_eq!(
        json(&layout.join("oci-layout"))["imageLayoutVersion"],
        "1.0.0"
    );
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(
            sha256_hex(&std::fs::read(&path).unwrap()),
            path.file_name().unwrap().to_str().unwrap(),
            "blob content does not match its name"
        );
    }
    let blob = |digest: &Value| {
        layout
            .join("blobs/sha256")
            .join(digest.as_str().unwrap().strip_prefix("sha256:").unwrap())
    };
    let index = json(&layout.join("index.json"));
    let descriptor = &index["manifests"][0];
    assert_eq!(descriptor["annotations"]["io.containerd.image.name"], NAME);
    assert_eq!(
        descriptor["annotations"]["org.opencontainers.image.ref.name"],
        "1.2.3"
    );
    let manifest = json(&blob(&descriptor["digest"]));
    let config = json(&blob(&manifest["config"]["digest"]));
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/whoami");
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        "1.2.3"
    );
    assert_eq!(config["config"]["Labels"]["org.example.test"], "yes");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    // Docker's index names the same blobs.
    let docker = json(&layout.join("manifest.json"));
    assert_eq!(docker[0]["RepoTags"][0], NAME);
    let layer = blob(&manifest["layers"][0]["digest"]);
    let listing = ok(Command::new("tar").arg("-tvzf").arg(&layer));
    for (mode, owner, path) in [
        ("-rwxr-xr-x", "0/0", "usr/local/bin/whoami"),
        ("-rw-r--r--", "0/0", "etc/passwd"),
        ("drwxrwxrwt", "0/0", "tmp/"),
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(mode) && l.contains(owner) && l.ends_with(path)),
            "{mode} {owner} {path} not in the layer:\n{listing}"
        );
    }
    assert!(
        !listing.contains("bin/sh"),
        "a shell in the image:\n{listing}"
    );

    // A real containerd imports and runs it.
    let containerd = Containerd::start(scratch("ctd")).await;
    let imported = containerd.ctr(&["images", "import", archive.to_str().unwrap()]);
    assert!(imported.contains(NAME), "{imported}");
    let images = containerd.ctr(&["images", "ls", "-q"]);
    assert_eq!(images.trim(), NAME);
    let out = containerd.ctr(&["run", "--rm", NAME, "whoami"]);
    assert!(out.contains("uid=65532 gid=65532"), "{out}");
    assert!(out.contains("tmp=writable"), "{out}");
    assert!(out.contains("root=no"), "{out}");
    assert!(out.contains("passwd:nonroot:x:65532:65532:"), "{out}");
    drop(containerd);
    let _ = std::fs::remove_dir_all(&dir);
}
