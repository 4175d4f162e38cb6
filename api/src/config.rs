//! The API's command line: `api serve [--migrate]` (the default) and `api migrate`, each
//! setting readable from a flag or an environment variable.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use shared::batch::schedule::ScheduleConfig;
use shared::config::{AttemptsConfig, DatabaseConfig, RedisConfig};
use telemetry::LogConfig;

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
    Admin(crate::admin::cli::AdminArgs),
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
    /// HS256 key that signs bearer tokens, shared by every API replica: at least 32 bytes and
    /// not guessable (random, e.g. `openssl rand -hex 32`); a weak one is refused at startup.
    #[arg(long = "jwt-secret", env = "JWT_SECRET", value_parser = shared::config::secret)]
    pub jwt_secret: SecretString,
    /// How long an access token (the bearer token) is valid. Short, since a client renews it
    /// with its refresh token; revocation does not wait for it (every request checks its
    /// session).
    #[arg(long = "token-ttl-secs", env = "TOKEN_TTL_SECS", default_value_t = 900)]
    pub token_ttl_secs: u64,
    /// How long a session lasts: its refresh token can be used until then, and the dashboard's
    /// session cookie is valid until then.
    #[arg(
        long = "refresh-ttl-secs",
        env = "REFRESH_TTL_SECS",
        default_value_t = 30 * 86_400
    )]
    pub refresh_ttl_secs: u64,
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
        default_value = "30000",
        value_parser = telemetry::millis
    )]
    pub request_timeout: Duration,
    /// Password hashes computed at once; each takes a core for tens of milliseconds.
    #[arg(long = "login-concurrency", env = "LOGIN_CONCURRENCY", default_value_t = cores())]
    pub login_concurrency: NonZeroUsize,
    #[command(flatten)]
    pub attempts: AttemptsConfig,
    /// Logins, registrations, refreshes and password changes per minute from one client
    /// address (per API process).
    #[arg(long = "login-rate-per-minute", env = "LOGIN_RATE_PER_MINUTE", default_value_t = NonZeroU32::new(30).unwrap())]
    pub login_rate_per_minute: NonZeroU32,
    /// Wrong passwords one account may take before its logins are refused for a minute, then
    /// for twice as long after each further one (at most 15 minutes); fleet-wide.
    #[arg(long = "login-failures-per-account", env = "LOGIN_FAILURES_PER_ACCOUNT", default_value_t = NonZeroU32::new(5).unwrap())]
    pub login_failures_per_account: NonZeroU32,
    /// Menu submissions per minute by one user (per API process).
    #[arg(long = "submit-rate-per-minute", env = "SUBMIT_RATE_PER_MINUTE", default_value_t = NonZeroU32::new(60).unwrap())]
    pub submit_rate_per_minute: NonZeroU32,
    /// Jobs one person may have waiting or running at once; a submission past it is refused
    /// with 429 until one finishes. `0`: no limit (and no count at each submission).
    #[arg(
        long = "waiting-jobs-per-user",
        env = "WAITING_JOBS_PER_USER",
        default_value_t = 20
    )]
    pub waiting_jobs_per_user: u32,
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
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }

    /// Refuses settings the server must not start with: a weak `JWT_SECRET` (the message never
    /// repeats the value).
    pub fn check(&self) -> anyhow::Result<()> {
        match weak_secret(&self.jwt_secret) {
            Some(problem) => anyhow::bail!(problem),
            None => Ok(()),
        }
    }

    pub fn refresh_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_ttl_secs)
    }
}

fn cores() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// Guesses (log10) below which a secret is refused. zxcvbn counts guesses in a `u64`, so its
/// estimate stops near 10^19.3 whatever the length: a random value reaches that cap, while
/// what it can explain as words, repeats or sequences (`changeme` four times: 10^8) stays far
/// below. The length rule does the rest.
const SECRET_GUESSES_LOG10: f64 = 18.0;

/// What is wrong with the token-signing key, if anything. A short or guessable HMAC key can be
/// brute-forced offline from any token it signed (RFC 7518 §3.2 asks for a key of at least the
/// hash's size, 256 bits for HS256), and length alone does not make a key random: `changeme`
/// repeated, a sequence or words are refused by zxcvbn's estimate of the guesses an attacker
/// needs. Checked here rather than while parsing, since a parse error would print the value.
fn weak_secret(secret: &SecretString) -> Option<&'static str> {
    let key = secret.expose_secret();
    if key.len() < 32 {
        return Some("JWT_SECRET must be at least 32 bytes long");
    }
    if zxcvbn::zxcvbn(key, &[]).guesses_log10() < SECRET_GUESSES_LOG10 {
        return Some(
            "JWT_SECRET is guessable (a word, a repeat or a sequence); use a random value, \
             e.g. `openssl rand -hex 32`",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "2f1c9a7e5b3d8046c1e9f72a4b6d0358e7a1c4f9";

    #[test]
    fn serve_takes_the_documented_defaults() {
        let cli = Cli::try_parse_from(["api", "serve", "--jwt-secret", SECRET]).unwrap();
        let Command::Serve(args) = cli.into_command().unwrap() else {
            panic!("not serve")
        };
        assert!(!args.migrate);
        let c = args.config;
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.token_ttl_secs, 900);
        assert_eq!(c.refresh_ttl_secs, 30 * 86_400);
        assert!(c.registration_enabled);
        assert_eq!(c.body_limit_bytes, 65_536);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.attempts.max_attempts, 3);
        assert_eq!(c.login_rate_per_minute.get(), 30);
        assert_eq!(c.login_failures_per_account.get(), 5);
        assert_eq!(c.waiting_jobs_per_user, 20);
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
    fn a_short_or_guessable_jwt_secret_is_refused_without_being_repeated() {
        for weak in [
            "short",
            "changeme-changeme-changeme-changeme",
            "0123456789abcdef0123456789abcdef",
            "passwordpasswordpasswordpassword",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "supersecretkeysupersecretkey12345",
        ] {
            let error = serve(weak).check().expect_err(weak).to_string();
            assert!(error.starts_with("JWT_SECRET"), "{error}");
            assert!(!error.contains(weak), "{error}");
        }
        // What `openssl rand -hex 32` and `-base64 32` print.
        for random in [
            "b2dcdb381401b99ac86f93ae41b6c36453a09e5e508149e2e99461242cce1265",
            "q3Vx8Rt0LmZp2YbKc7NwJh5FgDs1Ae9UoTi4Xl6vKm0=",
        ] {
            assert!(serve(random).check().is_ok(), "{random}");
        }
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let secret = "b2dcdb381401b99ac86f93ae41b6c36453a09e5e508149e2e99461242cce1265";
        let cli = Cli::try_parse_from([
            "api",
            "serve",
            "--jwt-secret",
            secret,
            "--database-url",
            "postgres://app:pg-pass-5e8b2f71@db/menus",
            "--redis-url",
            "redis://:redis-pass-a13f6d09@cache:6379",
        ])
        .unwrap();
        let shown = format!("{cli:?}");
        for hidden in [secret, "pg-pass-5e8b2f71", "redis-pass-a13f6d09"] {
            assert!(!shown.contains(hidden), "{hidden} in {shown}");
        }
    }

    fn serve(secret: &str) -> Config {
        let cli = Cli::try_parse_from(["api", "serve", "--jwt-secret", secret]).unwrap();
        let Command::Serve(args) = cli.into_command().unwrap() else {
            panic!("not serve")
        };
        args.config
    }
}
