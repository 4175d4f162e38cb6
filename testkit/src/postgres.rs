//! A PostgreSQL server of the test's own, for tests that stop or restart the database: doing that
//! to the machine's shared server would break every other test running in parallel.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

/// How long a start (or resume) may take before the test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the server's log a failed start shows.
const LOG_TAIL_LINES: usize = 30;

/// A fresh cluster in a temporary data directory, serving on a loopback port. Dropping it stops
/// the server and deletes the data.
pub struct PrivatePostgres {
    /// The loopback port it serves on, the same after a restart.
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    /// PostgreSQL refuses to run as root: when the tests do, the server runs as `postgres`.
    as_postgres: bool,
    child: Option<Child>,
}

impl PrivatePostgres {
    /// Creates a cluster (trust authentication, superuser `postgres`) and starts it.
    pub async fn start() -> PrivatePostgres {
        let data = std::env::temp_dir().join(format!("menus-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&data).expect("create the data directory");
        // Built before anything can fail, so that its drop removes the directory.
        let mut server = PrivatePostgres {
            port: crate::free_port(),
            bin: server_binaries(),
            data,
            as_postgres: is_root(),
            child: None,
        };
        if server.as_postgres {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:"]).arg(&server.data);
            run(chown).await;
        }
        let mut initdb = server.command("initdb");
        initdb
            .arg("-D")
            .arg(&server.data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .args(["-E", "UTF8", "--no-locale"]);
        run(initdb).await;
        server.resume().await;
        server
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database named `name`.
    pub async fn create_database(&self, name: &str) {
        let mut conn = PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the private server");
        let name = name.replace('"', "\"\"");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create database");
        let _ = conn.close().await;
    }

    /// Fast shutdown: open transactions are rolled back and every client is disconnected.
    /// Returns once the server has exited.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            // The postmaster's own id: under `runuser` the child is `runuser`, which does not
            // pass SIGINT on.
            match self.postmaster_pid() {
                Some(pid) => {
                    let _ = Command::new("kill").args(["-INT", &pid]).status();
                }
                None => {
                    let _ = child.kill();
                }
            }
        }
        let _ = child.wait();
    }

    /// Starts the server again on the same port and data, and waits until it accepts
    /// connections.
    pub async fn resume(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        let mut postgres = self.command("postgres");
        postgres
            .arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.data.display()))
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .args(["-c", "logging_collector=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("server log"))
            .stderr(log);
        self.child = Some(postgres.spawn().expect("start postgres"));
        let url = self.url("postgres");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // Bounded, in case something else holds the port and never answers.
            let attempt = tokio::time::timeout(Duration::from_secs(1), PgConnection::connect(&url));
            if let Ok(Ok(conn)) = attempt.await {
                let _ = conn.close().await;
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("private postgres exited ({status}):\n{}", self.log_tail());
            }
            if Instant::now() > deadline {
                panic!(
                    "private postgres did not accept connections within {START_TIMEOUT:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops the server and starts it again: every connection is lost, the data is kept.
    pub async fn restart(&mut self) {
        self.stop();
        self.resume().await;
    }

    /// Runs a server binary, as `postgres` when the tests run as root.
    fn command(&self, binary: &str) -> Command {
        let program = self.bin.join(binary);
        let mut command = if self.as_postgres {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(program);
            runuser
        } else {
            Command::new(program)
        };
        // The test's own directory may be closed to the `postgres` user.
        command.current_dir(&self.data);
        command
    }

    fn postmaster_pid(&self) -> Option<String> {
        let pid_file = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        pid_file.lines().next().map(str::to_string)
    }

    fn log_path(&self) -> PathBuf {
        self.data.join("server.log")
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// `pg_config --bindir` when it holds the server (on Debian it may name only the client's
/// version), else the newest `/usr/lib/postgresql/*/bin`.
fn server_binaries() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    from_pg_config
        .into_iter()
        .chain(newest_installed())
        .find(|bin| bin.join("postgres").is_file())
        .expect("find PostgreSQL's server binaries (initdb, postgres): is it installed? see README")
}

fn newest_installed() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("postgres").is_file())
        .max()
        .map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// Runs a setup command to its end; a failure panics with what it printed.
pub(crate) async fn run(command: Command) {
    let mut command = tokio::process::Command::from(command);
    let out = command.output().await.expect("run a setup command");
    assert!(
        out.status.success(),
        "{:?} failed ({}):\n{}{}",
        command.as_std(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
