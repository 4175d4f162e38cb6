//! The benchmarks' view of other processes: binaries of this workspace started on their own
//! (so their CPU and memory are theirs alone), and what Linux's `/proc` says each has used.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::stores::Stores;
use anyhow::Context;
use serde_json::{Value, json};

/// Readies a benchmark that runs this workspace's binaries: installs the TLS crypto provider its
/// HTTP clients use, and returns the directory of the release binaries (where the running
/// benchmark is), checking they are built.
pub fn prepare() -> anyhow::Result<PathBuf> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("the benchmark has no directory")?;
    for binary in ["api", "worker", "standin"] {
        anyhow::ensure!(
            dir.join(binary).exists(),
            "{} is missing: run `cargo build --release --bins` first (bench/run.sh does)",
            dir.join(binary).display()
        );
    }
    Ok(dir.to_path_buf())
}

/// A loopback address no one listens on now.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A started process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Process {
    pub child: Child,
    pub name: String,
}

impl Process {
    /// Starts `binary` from `bins` with only `env` (and `PATH`), its stderr in a temporary log.
    pub fn spawn(
        bins: &std::path::Path,
        binary: &str,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<Process> {
        let log =
            std::env::temp_dir().join(format!("menus-bench-{binary}-{}.log", std::process::id()));
        let mut command = Command::new(bins.join(binary));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().with_context(|| format!("start {binary}"))?;
        Ok(Process {
            child,
            name: binary.to_string(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time used so far (user + system).
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        cpu_of(self.pid())
    }

    /// Peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmHWM:").map(|k| k * 1024)
    }

    /// Resident memory now (`VmRSS`), in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmRSS:").map(|k| k * 1024)
    }

    /// Fails when the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!(
                "{} exited ({status}); see {}",
                self.name,
                std::env::temp_dir().display()
            );
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API binary serving `db` and `redis` on a free loopback port (limits on logins and
/// submits lifted: a benchmark is one client), with one registered account.
pub struct Api {
    pub process: Process,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The account's bearer token.
    pub token: String,
}

impl Api {
    pub async fn start(bins: &std::path::Path, stores: &Stores) -> anyhow::Result<Api> {
        let addr = free_addr()?;
        let mut env = stores.env();
        env.extend([
            ("API_BIND", addr.to_string()),
            ("JWT_SECRET", hex::encode(rand::random::<[u8; 32]>())),
            ("LOGIN_RATE_PER_MINUTE", "1000000".into()),
            ("SUBMIT_RATE_PER_MINUTE", "100000000".into()),
            // One account submits everything: the per-person limit does not apply to a benchmark.
            ("WAITING_JOBS_PER_USER", "0".into()),
        ]);
        let process = Process::spawn(bins, "api", &["serve"], &env)?;
        let base = format!("http://{addr}");
        let http = reqwest::Client::new();
        let mut up = false;
        for _ in 0..200 {
            if let Ok(r) = http.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::ensure!(up, "the api did not come up");
        let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
        let body = json!({"email": email, "password": testkit::PASSWORD});
        let registered = http
            .post(format!("{base}/v1/auth/register"))
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            registered.status().is_success(),
            "register: {}",
            registered.status()
        );
        let login: Value = http
            .post(format!("{base}/v1/auth/login"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let token = login["token"]
            .as_str()
            .with_context(|| format!("no token in {login}"))?
            .to_string();
        Ok(Api {
            process,
            base,
            token,
        })
    }
}

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`: 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU time (user + system) process `pid` has used so far.
pub fn cpu_of(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').context("unreadable stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok(Duration::from_secs_f64((utime + stime) / TICKS))
}

/// CPU time used so far by every process whose command is `comm` (e.g. all of PostgreSQL's).
pub fn cpu_of_all(comm: &str) -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .filter_map(|pid| cpu_of(pid).ok())
        .sum()
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field}"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("no value")?
        .parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_cpu_and_memory() {
        let me = std::process::id();
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(spin.elapsed());
        }
        assert!(cpu_of(me).unwrap() > Duration::ZERO);
        assert!(status_kib(me, "VmHWM:").unwrap() > 1_000);
    }
}
