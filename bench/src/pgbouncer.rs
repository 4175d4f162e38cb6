//! PgBouncer in transaction mode in front of PostgreSQL, for the scale-out benchmarks: every
//! transaction may run on another server connection, so nothing may rely on session state.
//!
//! sqlx prepares each statement under a name and binds it after a separate sync, which a
//! pooler in transaction mode may hand to another server connection; PgBouncer 1.21 and later
//! follow named prepared statements across server connections (`max_prepared_statements`).
//! Debian 12's package is 1.18, which cannot: the binary is given by path.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{Connection, PgConnection};

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A PgBouncer on a loopback port forwarding every database to one server as `postgres`.
/// Dropping it stops it and removes its files.
pub struct PgBouncer {
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl PgBouncer {
    /// Starts `binary` in front of `server` (`host:port`) with at most `server_connections`
    /// connections to it per database, and waits until it answers. As root it runs as
    /// `postgres` (PgBouncer refuses to run as root).
    pub async fn start(
        binary: &Path,
        server: &str,
        server_connections: u32,
    ) -> anyhow::Result<PgBouncer> {
        let (host, server_port) = server.rsplit_once(':').context("server is host:port")?;
        let dir = std::env::temp_dir().join(format!("menus-pgb-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir)?;
        let port = crate::process::free_addr()?.port();
        // `auth_type = any`: the user each database entry names logs in, as with trust.
        // `extra_float_digits` is a startup parameter sqlx sends that PgBouncer does not track.
        let ini = format!(
            "[databases]\n\
             * = host={host} port={server_port} user=postgres\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = any\n\
             pool_mode = transaction\n\
             max_prepared_statements = 200\n\
             default_pool_size = {server_connections}\n\
             max_client_conn = 5000\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {log}\n",
            log = dir.join("pgbouncer.log").display(),
        );
        let config = dir.join("pgbouncer.ini");
        std::fs::write(&config, ini)?;
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
        let mut command = Command::new(binary);
        if root {
            let chowned = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&dir)
                .status()?;
            anyhow::ensure!(chowned.success(), "chown {}", dir.display());
            command.args(["-u", "postgres"]);
        }
        let child = command
            .arg(&config)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let mut bouncer = PgBouncer { port, dir, child };
        bouncer.wait_ready().await?;
        Ok(bouncer)
    }

    /// The URL of `database` through this PgBouncer.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let url = self.url("postgres");
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(1), PgConnection::connect(&url));
            if let Ok(Ok(conn)) = attempt.await {
                let _ = conn.close().await;
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                anyhow::bail!("pgbouncer exited ({status}):\n{}", self.log());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "pgbouncer did not answer within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
