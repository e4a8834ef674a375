//! The processes of a side-by-side run: nginx-rtmp, the Fleetcast origin and
//! ffmpeg publishers, each on free loopback ports with its own directory and
//! log, stopped (SIGTERM, then SIGKILL) when dropped.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::time::Instant;

/// A child process that is stopped when dropped.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr going to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone().context("clone log handle")?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("start {name} ({cmd:?})"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error naming the process and the end of its log if it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "{} exited ({status}); its log ends with:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of the process's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGTERM, up to 5 s to exit, then SIGKILL.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < until {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port free at the time of asking.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind a loopback port")?;
    Ok(l.local_addr().context("local address")?.port())
}

/// Waits until `addr` accepts TCP connections, failing early if `proc` exits.
pub async fn wait_listening(addr: SocketAddr, proc: &mut Proc, timeout: Duration) -> Result<()> {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        proc.check_alive()?;
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "{} did not listen on {addr} within {timeout:?}; its log ends with:\n{}",
        proc.name,
        proc.log_tail()
    )
}

/// A running server and its playback addresses.
#[derive(Debug)]
pub struct Server {
    /// The process (its children are measured too).
    pub proc: Proc,
    /// RTMP port.
    pub rtmp_port: u16,
    /// HTTP port, when the server has one.
    pub http_port: Option<u16>,
}

/// nginx with the RTMP module, from the config template (`@PREFIX@`, `@RTMP_PORT@`).
pub async fn start_nginx(bin: &str, template: &Path, dir: &Path) -> Result<Server> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolve {}", dir.display()))?;
    let port = free_port()?;
    let conf = std::fs::read_to_string(template)
        .with_context(|| format!("read {}", template.display()))?
        .replace("@PREFIX@", &dir.display().to_string())
        .replace("@RTMP_PORT@", &port.to_string());
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).context("write nginx.conf")?;
    let mut cmd = Command::new(bin);
    cmd.arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf_path);
    let mut proc = Proc::spawn("nginx", cmd, &dir.join("stdout.log"))?;
    wait_listening(
        SocketAddr::from(([127, 0, 0, 1], port)),
        &mut proc,
        Duration::from_secs(10),
    )
    .await?;
    Ok(Server {
        proc,
        rtmp_port: port,
        http_port: None,
    })
}

/// The Fleetcast origin (`fleetcast-media origin`), RTMP, HTTP and admin on free ports.
pub async fn start_fleetcast(bin: &str, dir: &Path) -> Result<Server> {
    std::fs::create_dir_all(dir.join("vod"))
        .with_context(|| format!("create {}", dir.display()))?;
    let rtmp_port = free_port()?;
    let http_port = free_port()?;
    let admin_port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.arg("origin")
        .arg("--rtmp")
        .arg(format!("127.0.0.1:{rtmp_port}"))
        .arg("--http")
        .arg(format!("127.0.0.1:{http_port}"))
        .arg("--admin")
        .arg(format!("127.0.0.1:{admin_port}"))
        .arg("--data")
        .arg(dir)
        .env("RUST_LOG", "warn");
    let mut proc = Proc::spawn("fleetcast-media", cmd, &dir.join("server.log"))?;
    wait_listening(
        SocketAddr::from(([127, 0, 0, 1], rtmp_port)),
        &mut proc,
        Duration::from_secs(10),
    )
    .await?;
    wait_listening(
        SocketAddr::from(([127, 0, 0, 1], http_port)),
        &mut proc,
        Duration::from_secs(10),
    )
    .await?;
    Ok(Server {
        proc,
        rtmp_port,
        http_port: Some(http_port),
    })
}

/// ffmpeg publishing `file` in a loop at its own rate (`-re`), codecs copied.
pub fn start_publisher(ffmpeg: &str, file: &Path, url: &str, log: &Path) -> Result<Proc> {
    let mut cmd = Command::new(ffmpeg);
    cmd.args([
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-re",
        "-stream_loop",
        "-1",
        "-i",
    ])
    .arg(file)
    .args(["-c", "copy", "-f", "flv", url]);
    Proc::spawn("ffmpeg publisher", cmd, log)
}
