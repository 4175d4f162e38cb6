//! The API's command line: `api serve [--migrate]` (the default) and `api migrate`, each
//! setting readable from a flag or an environment variable.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use shared::batch::schedule::ScheduleConfig;
use shared::config::{DatabaseConfig, LogConfig, RedisConfig};

#[derive(Parser, Debug)]
#[command(name = "api", about = "The menu generation HTTP API")]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Apply the database migrations and exit.
    Migrate {
        #[command(flatten)]
        database: DatabaseConfig,
        #[command(flatten)]
        log: LogConfig,
    },
    /// Operate the service from a shell: accounts, requeue and cancel by filter, statistics,
    /// weekly batches.
    Admin(crate::cli::AdminArgs),
}

impl Cli {
    /// The command to run. A bare `api` serves, configured from the environment alone.
    pub fn into_command(self) -> Result<Command, clap::Error> {
        match self.command {
            Some(command) => Ok(command),
            None => ServeArgs::try_parse_from(["api serve"]).map(Command::Serve),
        }
    }
}

#[derive(Parser, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: Config,
    /// Apply the database migrations before serving.
    #[arg(long)]
    pub migrate: bool,
}

/// Everything a serving API process is configured with.
#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub log: LogConfig,
    /// Address to listen on.
    #[arg(long, env = "API_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// HS256 key that signs bearer tokens: at least 32 bytes, shared by every API replica.
    #[arg(long = "jwt-secret", env = "JWT_SECRET", value_parser = jwt_secret)]
    pub jwt_secret: SecretString,
    /// How long a bearer token is valid.
    #[arg(
        long = "token-ttl-secs",
        env = "TOKEN_TTL_SECS",
        default_value_t = 3600
    )]
    pub token_ttl_secs: u64,
    /// Whether anyone may create an account.
    #[arg(long = "registration-enabled", env = "REGISTRATION_ENABLED", default_value_t = true, action = ArgAction::Set)]
    pub registration_enabled: bool,
    /// Largest request body accepted.
    #[arg(
        long = "body-limit-bytes",
        env = "BODY_LIMIT_BYTES",
        default_value_t = 65_536
    )]
    pub body_limit_bytes: usize,
    /// Time allowed for a request, long polls included.
    #[arg(
        long = "request-timeout-ms",
        env = "REQUEST_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub request_timeout_ms: u64,
    /// Password hashes computed at once; each takes a core for tens of milliseconds.
    #[arg(long = "login-concurrency", env = "LOGIN_CONCURRENCY", default_value_t = cores())]
    pub login_concurrency: NonZeroUsize,
    /// Attempts a new job gets before it fails.
    #[arg(long = "job-max-attempts", env = "JOB_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=100))]
    pub job_max_attempts: i32,
    /// Logins and registrations per minute from one client address.
    #[arg(long = "login-rate-per-minute", env = "LOGIN_RATE_PER_MINUTE", default_value_t = NonZeroU32::new(60).unwrap())]
    pub login_rate_per_minute: NonZeroU32,
    /// Menu submissions per minute by one user.
    #[arg(long = "submit-rate-per-minute", env = "SUBMIT_RATE_PER_MINUTE", default_value_t = NonZeroU32::new(60).unwrap())]
    pub submit_rate_per_minute: NonZeroU32,
    /// Mark the dashboard's session cookie `Secure` (sent over HTTPS only). Off by default so
    /// the dashboard works on http://localhost; turn it on wherever it is served over TLS.
    #[arg(long = "admin-cookie-secure", env = "ADMIN_COOKIE_SECURE", default_value_t = false, action = ArgAction::Set)]
    pub admin_cookie_secure: bool,
    /// The weekly batch's schedule, the workers' settings: the API reads only its zone
    /// (`BATCH_TIMEZONE`), where "tomorrow", a manual batch's default period, is.
    #[command(flatten)]
    pub batch: ScheduleConfig,
}

impl Config {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }
}

fn cores() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// A short HMAC key can be brute-forced offline from any token it signed.
fn jwt_secret(value: &str) -> Result<SecretString, String> {
    let secret = shared::config::secret(value)?;
    if secret.expose_secret().len() < 32 {
        return Err("must be at least 32 bytes long".into());
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn serve_takes_the_documented_defaults() {
        let cli = Cli::try_parse_from(["api", "serve", "--jwt-secret", SECRET]).unwrap();
        let Command::Serve(args) = cli.into_command().unwrap() else {
            panic!("not serve")
        };
        assert!(!args.migrate);
        let c = args.config;
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.token_ttl_secs, 3600);
        assert!(c.registration_enabled);
        assert_eq!(c.body_limit_bytes, 65_536);
        assert_eq!(c.request_timeout_ms, 30_000);
        assert_eq!(c.job_max_attempts, 3);
        assert_eq!(c.login_rate_per_minute.get(), 60);
        assert_eq!(c.submit_rate_per_minute.get(), 60);
        assert!(!c.admin_cookie_secure);
        assert_eq!(c.batch.timezone, chrono_tz::UTC);
    }

    #[test]
    fn registration_can_be_switched_off_and_migrate_needs_no_secret() {
        let cli = Cli::try_parse_from([
            "api",
            "serve",
            "--migrate",
            "--jwt-secret",
            SECRET,
            "--registration-enabled",
            "false",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("not serve")
        };
        assert!(args.migrate && !args.config.registration_enabled);
        let cli = Cli::try_parse_from(["api", "migrate"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Migrate { .. })));
    }

    #[test]
    fn a_short_jwt_secret_is_refused() {
        assert!(Cli::try_parse_from(["api", "serve", "--jwt-secret", "short"]).is_err());
    }
}
