//! Settings: each is an environment variable and the matching flag (the flag wins). Each is
//! declared once, below, with the parser that turns it into its type, so that a bad value
//! stops the start with one line naming the setting (`setting_error`) before anything runs.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::HeaderValue;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, Args};
use ipnet::IpNet;
use jsonwebtoken::Algorithm;

use crate::sessions::{SessionLimit, SessionLimitPolicy};
use crate::store::StoreOptions;
use crate::tls::TlsFiles;

/// The settings of `serve` and `demo`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "TOLLGATE_ADDR", default_value = "127.0.0.1:8000", value_parser = address)]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Lifetime of an access token.
    #[arg(long, env = "TOLLGATE_ACCESS_TTL", default_value = "15m",
        value_parser = duration(POSITIVE, MAX_ACCESS_TTL))]
    pub access_ttl: Duration,
    /// Lifetime of each refresh token from its issue (idle expiry of a session).
    #[arg(long, env = "TOLLGATE_REFRESH_TTL", default_value = "30d",
        value_parser = duration(POSITIVE, MAX_REFRESH_TTL))]
    pub refresh_ttl: Duration,
    /// Absolute expiry of a session from its login.
    #[arg(long, env = "TOLLGATE_SESSION_MAX_AGE", default_value = "90d",
        value_parser = duration(POSITIVE, MAX_SESSION_MAX_AGE))]
    pub session_max_age: Duration,
    /// How long the previous refresh token still answers after a rotation (two tabs, retries).
    #[arg(long, env = "TOLLGATE_REFRESH_REUSE_GRACE", default_value = "10s",
        value_parser = duration(Duration::ZERO, MAX_REUSE_GRACE))]
    pub refresh_reuse_grace: Duration,
    /// Live sessions (devices) a user may have.
    #[arg(long, env = "TOLLGATE_MAX_SESSIONS", default_value = "5",
        value_parser = whole_number(1, MAX_SESSIONS_LIMIT))]
    pub max_sessions: u32,
    /// `revoke-all` or `evict-oldest`.
    #[arg(long, env = "TOLLGATE_SESSION_LIMIT_POLICY", default_value = "revoke-all",
        value_parser = session_limit_policy)]
    pub session_limit_policy: SessionLimitPolicy,
    /// Require a device fingerprint at login and refresh.
    #[arg(long, env = "TOLLGATE_REQUIRE_FINGERPRINT", default_value = "false",
        value_parser = boolean, action = ArgAction::Set)]
    pub require_fingerprint: bool,
    #[command(flatten)]
    pub signing: SigningArgs,
    /// Issuer (`iss`) of the tokens.
    #[arg(long, env = "TOLLGATE_ISSUER", default_value = "tollgate", value_parser = not_empty)]
    pub issuer: String,
    /// Audience (`aud`) of the tokens.
    #[arg(long, env = "TOLLGATE_AUDIENCE", default_value = "tollgate-api", value_parser = not_empty)]
    pub audience: String,
    /// Comma-separated origins allowed by CORS, such as `http://localhost:4200`.
    #[arg(long, env = "TOLLGATE_CORS_ORIGINS", default_value = "", value_parser = origins)]
    pub cors_origins: Origins,
    /// Directory of a built web client to serve instead of the one inside the binary (client
    /// development); it must hold `index.html`.
    #[arg(long, env = "TOLLGATE_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// PEM file of the TLS certificate chain, leaf first; with `TOLLGATE_TLS_KEY`, `serve`
    /// speaks HTTPS (HTTP/2 and HTTP/1.1). Both files are read again when they change.
    #[arg(long, env = "TOLLGATE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "TOLLGATE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Comma-separated proxies (IPs or CIDR ranges) whose `X-Forwarded-For` is believed.
    #[arg(long, env = "TOLLGATE_TRUSTED_PROXIES", default_value = "", value_parser = proxies)]
    pub trusted_proxies: Proxies,
    /// Longest time to read a request's headers, and to answer it.
    #[arg(long, env = "TOLLGATE_REQUEST_TIMEOUT", default_value = "30s",
        value_parser = duration(POSITIVE, MAX_REQUEST_TIMEOUT))]
    pub request_timeout: Duration,
    /// How often dead sessions are deleted and keys rotated elsewhere picked up.
    #[arg(long, env = "TOLLGATE_SWEEP_INTERVAL", default_value = "30s",
        value_parser = duration(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL))]
    pub sweep_interval: Duration,
    /// How often revocations made elsewhere (other instances, the command line) are read at
    /// the latest; on PostgreSQL they are also read as soon as they are notified.
    #[arg(long, env = "TOLLGATE_REVOCATION_POLL", default_value = "1s",
        value_parser = duration(MIN_REVOCATION_POLL, MAX_REVOCATION_POLL))]
    pub revocation_poll: Duration,
    /// Sign-in attempts allowed per client IP and per username, as `N/PERIOD`, or `off`.
    #[arg(long, env = "TOLLGATE_LOGIN_RATE", default_value = "10/1m", value_parser = login_rate)]
    pub login_rate: LoginRateSetting,
    /// Comma-separated secrets (each at least 32 bytes) that resource servers send as
    /// `Authorization: Bearer` to `POST /api/introspect`; none: the endpoint answers 404.
    #[arg(long, env = "TOLLGATE_INTROSPECTION_SECRETS", default_value = "",
        value_parser = secrets, hide_env_values = true, hide_default_value = true)]
    pub introspection_secrets: Secrets,
    /// `open` (anyone may create an account with `POST /api/register`) or `closed` (default
    /// for `serve`; `demo` is open).
    #[arg(long, env = "TOLLGATE_SIGNUP", value_parser = signup)]
    pub signup: Option<bool>,
    /// The mail server for password resets, `smtp://user:pass@host:port` (add
    /// `?tls=required` for STARTTLS) or `smtps://…`; none: resets are not offered.
    #[arg(long, env = "TOLLGATE_SMTP_URL", value_parser = smtp_url, hide_env_values = true)]
    pub smtp_url: Option<Secret>,
    /// The sender of Tollgate's mail.
    #[arg(long, env = "TOLLGATE_MAIL_FROM", default_value = "Tollgate <tollgate@localhost>",
        value_parser = mailbox)]
    pub mail_from: String,
    /// Where users reach the web client, for links in mails; required with `TOLLGATE_SMTP_URL`.
    #[arg(long, env = "TOLLGATE_PUBLIC_URL", value_parser = public_url)]
    pub public_url: Option<String>,
    /// `text` (colours only on a terminal) or `json` (one object per line, for log shippers).
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", default_value = "text", value_parser = log_format)]
    pub log_format: LogFormat,
    /// How long audit events are kept, or `off` to record none.
    #[arg(long, env = "TOLLGATE_AUDIT_RETENTION", default_value = "90d", value_parser = audit_retention)]
    pub audit_retention: AuditRetention,
    /// DPoP (RFC 9449): `optional` binds a session signed in with a proof to its key, `required`
    /// refuses sign-ins and tokens without one, `off` binds nothing new.
    #[arg(long, env = "TOLLGATE_DPOP", default_value = "optional", value_parser = dpop_mode)]
    pub dpop: DpopMode,
    /// The algorithms DPoP proofs may be signed with, comma-separated (asymmetric only).
    #[arg(long, env = "TOLLGATE_DPOP_ALGS", default_value = "ES256,EdDSA", value_parser = dpop_algs)]
    pub dpop_algs: DpopAlgorithms,
    /// The origin clients call Tollgate's API at (`https://auth.example.com`), which DPoP proofs
    /// name in `htu`. Without it: what a trusted proxy forwarded, or the request's `Host`.
    #[arg(long, env = "TOLLGATE_DPOP_ORIGIN", value_parser = origin)]
    pub dpop_origin: Option<String>,
    /// Require server nonces (`DPoP-Nonce`) in DPoP proofs.
    #[arg(long, env = "TOLLGATE_DPOP_NONCE", default_value = "false",
        value_parser = boolean, action = ArgAction::Set)]
    pub dpop_nonce: bool,
}

/// Whether sessions are bound to a DPoP key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopMode {
    Off,
    Optional,
    Required,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopAlgorithms(pub Vec<Algorithm>);

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// `sqlite://FILE` or `postgres://…` (default `sqlite://tollgate.db`; `demo`: a fresh file).
    /// May hold a password, so `--help` does not show its value.
    #[arg(long, env = "TOLLGATE_DATABASE_URL", value_parser = database_url, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Most database connections this instance opens.
    #[arg(long, env = "TOLLGATE_DB_POOL_SIZE", default_value = "10",
        value_parser = whole_number(1, MAX_DB_POOL_SIZE))]
    pub db_pool_size: u32,
    /// Longest wait for a connection or a statement before the store counts as unavailable.
    /// At least 1ms: PostgreSQL's statement timeout is in whole milliseconds, 0 meaning none.
    #[arg(long, env = "TOLLGATE_DB_TIMEOUT", default_value = "5s",
        value_parser = duration(MIN_DB_TIMEOUT, MAX_DB_TIMEOUT))]
    pub db_timeout: Duration,
    /// SQLite: `full` (every commit on disk before it is confirmed) or `normal` (faster;
    /// a power loss may undo the last commits).
    #[arg(long, env = "TOLLGATE_SQLITE_SYNCHRONOUS", default_value = "full",
        value_parser = durable_commits, action = ArgAction::Set)]
    pub sqlite_synchronous: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SigningArgs {
    /// `EdDSA`, `ES256`, `RS256` or `HS256`.
    #[arg(long, env = "TOLLGATE_JWT_ALG", default_value = "EdDSA", value_parser = algorithm)]
    pub jwt_alg: Algorithm,
    /// The HS256 secret, at least 32 bytes.
    #[arg(long, env = "TOLLGATE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn expose_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

/// A setting that cannot be used, with the variable (or, without one, the flag) naming it.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub variable: String,
    pub flag: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = format!("--{}", self.flag);
        if self.variable == flag {
            write!(f, "invalid setting {flag}: {}", self.message)
        } else {
            write!(
                f,
                "invalid setting {} ({flag}): {}",
                self.variable, self.message
            )
        }
    }
}

impl ConfigError {
    pub(crate) fn new(variable: &str, flag: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            variable: variable.to_owned(),
            flag: flag.to_owned(),
            message: message.into(),
        }
    }
}

/// The setting that `error` (from parsing `command`'s arguments) refused, or None when the
/// error is not about a value (help, version, an unknown flag: clap reports those itself).
pub fn setting_error(error: &clap::Error, command: &clap::Command) -> Option<ConfigError> {
    if !matches!(
        error.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    // Rendered as `--access-ttl <ACCESS_TTL>`.
    let Some(ContextValue::String(rendered)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = rendered
        .trim_start_matches('-')
        .split([' ', '='])
        .next()
        .unwrap_or_default();
    let arg = find_arg(command, flag);
    let variable = arg.and_then(|arg| arg.get_env()).map_or_else(
        || format!("--{flag}"),
        |env| env.to_string_lossy().into_owned(),
    );
    let given = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => value.as_str(),
        _ => "",
    };
    let message = match std::error::Error::source(error) {
        // Parsers name the value they refuse: never repeat a secret's.
        Some(_) if arg.is_some_and(clap::Arg::is_hide_env_values_set) => {
            "is not a valid value".to_owned()
        }
        Some(cause) => cause.to_string(),
        None if given.is_empty() => "needs a value".to_owned(),
        None => "is not a valid value".to_owned(),
    };
    Some(ConfigError::new(&variable, flag, message))
}

/// `command`'s (or a subcommand's) flag `--flag`.
fn find_arg<'a>(command: &'a clap::Command, flag: &str) -> Option<&'a clap::Arg> {
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(flag))
        .or_else(|| {
            command
                .get_subcommands()
                .find_map(|subcommand| find_arg(subcommand, flag))
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRate {
    pub attempts: NonZeroU32,
    pub period: Duration,
}

/// `TOLLGATE_LOGIN_RATE`: a rate, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRateSetting(pub Option<LoginRate>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(pub Vec<HeaderValue>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies(pub Vec<IpNet>);

#[derive(Debug, Clone, Default)]
pub struct Secrets(pub Vec<Secret>);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `TOLLGATE_LOG_FORMAT` for commands without server settings; text unless it says json.
    pub fn from_env() -> LogFormat {
        match std::env::var("TOLLGATE_LOG_FORMAT")
            .as_deref()
            .map(str::trim)
        {
            Ok("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// How long audit events are kept; None records none.
#[derive(Debug, Clone, Copy)]
pub struct AuditRetention(pub Option<Duration>);

#[derive(Debug, Clone)]
pub struct SigningConfig {
    pub algorithm: Algorithm,
    pub secret: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub store: StoreConfig,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub session_max_age: Duration,
    pub refresh_reuse_grace: Duration,
    pub session_limit: SessionLimit,
    pub require_fingerprint: bool,
    pub signing: SigningConfig,
    pub issuer: String,
    pub audience: String,
    pub cors_origins: Vec<HeaderValue>,
    pub web_dir: Option<PathBuf>,
    pub tls: Option<TlsFiles>,
    pub trusted_proxies: Vec<IpNet>,
    pub request_timeout: Duration,
    pub sweep_interval: Duration,
    pub login_rate: Option<LoginRate>,
    pub introspection_secrets: Vec<Secret>,
    pub revocation_poll: Duration,
    pub signup_open: bool,
    pub smtp_url: Option<Secret>,
    pub mail_from: String,
    pub public_url: String,
    pub audit_retention: Option<Duration>,
    pub dpop: DpopMode,
    pub dpop_algorithms: Vec<Algorithm>,
    pub dpop_nonce: bool,
    /// `TOLLGATE_DPOP_ORIGIN`: what DPoP proofs name.
    pub dpop_origin: Option<String>,
}

impl Config {
    /// The settings that depend on each other; `default_database_url` is used when none is given.
    pub fn from_args(args: &ServerArgs, default_database_url: &str) -> Result<Config, ConfigError> {
        if args.smtp_url.is_some() && args.public_url.is_none() {
            return Err(ConfigError::new(
                "TOLLGATE_PUBLIC_URL",
                "public-url",
                "is required with TOLLGATE_SMTP_URL: reset links must lead where users open the client",
            ));
        }
        Ok(Config {
            addr: args.addr,
            store: StoreConfig::from_args(&args.store, default_database_url),
            access_ttl: args.access_ttl,
            refresh_ttl: args.refresh_ttl,
            session_max_age: args.session_max_age,
            refresh_reuse_grace: args.refresh_reuse_grace,
            session_limit: SessionLimit {
                max_sessions: args.max_sessions,
                policy: args.session_limit_policy,
            },
            require_fingerprint: args.require_fingerprint,
            signing: SigningConfig::from_args(&args.signing)?,
            issuer: args.issuer.clone(),
            audience: args.audience.clone(),
            cors_origins: args.cors_origins.0.clone(),
            web_dir: args.web_dir.clone(),
            tls: match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            trusted_proxies: args.trusted_proxies.0.clone(),
            request_timeout: args.request_timeout,
            sweep_interval: args.sweep_interval,
            login_rate: args.login_rate.0,
            introspection_secrets: args.introspection_secrets.0.clone(),
            revocation_poll: args.revocation_poll,
            signup_open: args.signup.unwrap_or(false),
            smtp_url: args.smtp_url.clone(),
            mail_from: args.mail_from.clone(),
            public_url: args
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", args.addr)),
            audit_retention: args.audit_retention.0,
            dpop: args.dpop,
            dpop_algorithms: args.dpop_algs.0.clone(),
            dpop_nonce: args.dpop_nonce,
            dpop_origin: args.dpop_origin.clone(),
        })
    }
}

impl SigningConfig {
    /// The algorithm with its secret: required for HS256, and long enough.
    pub fn from_args(args: &SigningArgs) -> Result<SigningConfig, ConfigError> {
        let invalid = |message| ConfigError::new("TOLLGATE_JWT_SECRET", "jwt-secret", message);
        let secret = match (&args.jwt_secret, args.jwt_alg) {
            (None, Algorithm::HS256) => return Err(invalid("is required with HS256")),
            (Some(secret), Algorithm::HS256) if secret.expose().len() < 32 => {
                return Err(invalid("must be at least 32 bytes"))
            }
            (Some(secret), Algorithm::HS256) => Some(secret.clone()),
            _ => None,
        };
        Ok(SigningConfig {
            algorithm: args.jwt_alg,
            secret,
        })
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: String,
    pub options: StoreOptions,
}

impl StoreConfig {
    /// The store settings; `default_url` is used when none is given.
    pub fn from_args(args: &StoreArgs, default_url: &str) -> StoreConfig {
        StoreConfig {
            url: args
                .database_url
                .clone()
                .unwrap_or_else(|| default_url.to_owned()),
            options: StoreOptions {
                pool_size: args.db_pool_size,
                timeout: args.db_timeout,
                durable_commits: args.sqlite_synchronous,
            },
        }
    }
}

const DAY: Duration = Duration::from_secs(86_400);
// Upper bounds: generous for any real deployment, and far from where arithmetic on times
// could overflow. A value beyond one stops the start, naming the setting.
pub const MAX_ACCESS_TTL: Duration = DAY;
pub const MAX_REFRESH_TTL: Duration = Duration::from_secs(365 * 86_400);
pub const MAX_SESSION_MAX_AGE: Duration = Duration::from_secs(10 * 365 * 86_400);
pub const MAX_REUSE_GRACE: Duration = Duration::from_secs(3600);
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
pub const MAX_SWEEP_INTERVAL: Duration = DAY;
pub const MAX_DB_TIMEOUT: Duration = Duration::from_secs(600);
pub const MAX_LOGIN_RATE_PERIOD: Duration = DAY;
pub const MAX_KEY_ACTIVATION_DELAY: Duration = DAY;
pub const MAX_AUDIT_RETENTION: Duration = Duration::from_secs(10 * 365 * 86_400);
pub const MAX_SESSIONS_LIMIT: u32 = 10_000;
pub const MAX_DB_POOL_SIZE: u32 = 1_000;

/// The least a duration that must not be zero may be.
const POSITIVE: Duration = Duration::from_nanos(1);
// Lower bounds where a tiny value would do harm: a sweep loop hammering the database, a
// database timeout that rounds to "no timeout".
pub const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
pub const MIN_DB_TIMEOUT: Duration = Duration::from_millis(1);
pub const MIN_REVOCATION_POLL: Duration = Duration::from_millis(100);
pub const MAX_REVOCATION_POLL: Duration = Duration::from_secs(3600);

// The parsers. Each error names the value; `setting_error` adds the setting.

/// A duration such as `15m` or `30d` (humantime's forms), from `min` to `max`.
pub fn duration(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |value| {
        let parsed = humantime::parse_duration(value.trim())
            .map_err(|e| format!("{value:?} is not a duration ({e})"))?;
        if parsed > max {
            return Err(format!(
                "{value:?} is longer than the maximum, {}",
                humantime::format_duration(max)
            ));
        }
        if parsed < min && min == POSITIVE {
            return Err("must be longer than 0s".to_owned());
        }
        if parsed < min {
            return Err(format!(
                "must be at least {}",
                humantime::format_duration(min)
            ));
        }
        Ok(parsed)
    }
}

/// `keys rotate --activate-after`: how long a new key is only published before it signs.
pub fn key_activation_delay(value: &str) -> Result<Duration, String> {
    duration(Duration::ZERO, MAX_KEY_ACTIVATION_DELAY)(value)
}

fn whole_number(
    min: u32,
    max: u32,
) -> impl Fn(&str) -> Result<u32, String> + Clone + Send + Sync + 'static {
    move |value| {
        value
            .parse::<u32>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("{value:?} is not a whole number from {min} to {max}"))
    }
}

fn address(value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("{value:?} is not an address such as 127.0.0.1:8000"))
}

fn database_url(value: &str) -> Result<String, String> {
    let known = ["sqlite:", "postgres:", "postgresql:"];
    if known.iter().any(|scheme| value.starts_with(scheme)) {
        Ok(value.to_owned())
    } else {
        Err("must start with sqlite: or postgres:".to_owned())
    }
}

fn session_limit_policy(value: &str) -> Result<SessionLimitPolicy, String> {
    match value {
        "revoke-all" => Ok(SessionLimitPolicy::RevokeAll),
        "evict-oldest" => Ok(SessionLimitPolicy::EvictOldest),
        other => Err(format!("{other:?} is neither revoke-all nor evict-oldest")),
    }
}

fn boolean(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{value:?} is neither true nor false")),
    }
}

/// `full` (true) or `normal` (false).
fn durable_commits(value: &str) -> Result<bool, String> {
    match value {
        "full" => Ok(true),
        "normal" => Ok(false),
        other => Err(format!("{other:?} is neither full nor normal")),
    }
}

fn algorithm(value: &str) -> Result<Algorithm, String> {
    match value {
        "EdDSA" => Ok(Algorithm::EdDSA),
        "ES256" => Ok(Algorithm::ES256),
        "RS256" => Ok(Algorithm::RS256),
        "HS256" => Ok(Algorithm::HS256),
        other => Err(format!(
            "{other:?} is not one of EdDSA, ES256, RS256, HS256"
        )),
    }
}

fn not_empty(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// The entries of a comma-separated list, trimmed, empty ones skipped.
fn entries(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
}

fn origins(value: &str) -> Result<Origins, String> {
    entries(value)
        .map(|origin| {
            origin_header(origin)
                .ok_or_else(|| format!("{origin:?} is not an origin such as http://localhost:4200"))
        })
        .collect::<Result<_, _>>()
        .map(Origins)
}

fn origin_header(origin: &str) -> Option<HeaderValue> {
    let (scheme, rest) = origin.split_once("://")?;
    let valid = matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', ' ', '*']);
    valid.then(|| HeaderValue::from_str(origin).ok()).flatten()
}

/// `10.0.0.1, 10.1.0.0/16`: single addresses or ranges.
fn proxies(value: &str) -> Result<Proxies, String> {
    entries(value)
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{entry:?} is neither an IP address nor a CIDR range"))
        })
        .collect::<Result<_, _>>()
        .map(Proxies)
}

/// Never names the value: these are secrets.
fn secrets(value: &str) -> Result<Secrets, String> {
    entries(value)
        .map(|secret| {
            if secret.len() >= 32 {
                Ok(Secret(secret.to_owned()))
            } else {
                Err("each secret must be at least 32 bytes".to_owned())
            }
        })
        .collect::<Result<_, _>>()
        .map(Secrets)
}

fn log_format(value: &str) -> Result<LogFormat, String> {
    match value.trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{value:?} is neither text nor json")),
    }
}

fn signup(value: &str) -> Result<bool, String> {
    match value.trim() {
        "open" => Ok(true),
        "closed" => Ok(false),
        _ => Err(format!("{value:?} is neither open nor closed")),
    }
}

fn smtp_url(value: &str) -> Result<Secret, String> {
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(value.trim())
        .map(|_| Secret(value.trim().to_owned()))
        .map_err(|_| "is not an smtp:// or smtps:// URL".to_owned())
}

fn mailbox(value: &str) -> Result<String, String> {
    value
        .trim()
        .parse::<lettre::message::Mailbox>()
        .map(|_| value.trim().to_owned())
        .map_err(|_| format!("{value:?} is not a mail address such as Name <name@example.com>"))
}

fn public_url(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    let (scheme, rest) = value
        .split_once("://")
        .ok_or_else(|| format!("{value:?} is not an http:// or https:// URL"))?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['?', '#']) {
        return Err(format!("{value:?} is not an http:// or https:// URL"));
    }
    Ok(value.to_owned())
}

/// An `http://` or `https://` origin: a scheme and a host, nothing after.
fn origin(value: &str) -> Result<String, String> {
    let url = public_url(value)?;
    let (_, rest) = url.split_once("://").unwrap_or_default();
    if rest.contains('/') || rest.contains('@') {
        return Err(format!(
            "{value:?} is not an origin such as https://auth.example.com"
        ));
    }
    Ok(url)
}

fn dpop_mode(value: &str) -> Result<DpopMode, String> {
    match value {
        "off" => Ok(DpopMode::Off),
        "optional" => Ok(DpopMode::Optional),
        "required" => Ok(DpopMode::Required),
        other => Err(format!("{other:?} is not one of off, optional, required")),
    }
}

fn dpop_algs(value: &str) -> Result<DpopAlgorithms, String> {
    let algorithms = value
        .split(',')
        .map(|alg| match alg.trim() {
            "ES256" => Ok(Algorithm::ES256),
            "ES384" => Ok(Algorithm::ES384),
            "EdDSA" => Ok(Algorithm::EdDSA),
            "RS256" => Ok(Algorithm::RS256),
            "PS256" => Ok(Algorithm::PS256),
            other => Err(format!(
                "{other:?} is not one of ES256, ES384, EdDSA, RS256, PS256"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DpopAlgorithms(algorithms))
}

fn audit_retention(value: &str) -> Result<AuditRetention, String> {
    if value.trim() == "off" {
        return Ok(AuditRetention(None));
    }
    duration(POSITIVE, MAX_AUDIT_RETENTION)(value).map(|kept| AuditRetention(Some(kept)))
}

fn login_rate(value: &str) -> Result<LoginRateSetting, String> {
    if value == "off" {
        return Ok(LoginRateSetting(None));
    }
    let error = || format!("{value:?} is neither N/PERIOD (such as 10/1m) nor off");
    let (attempts, period) = value.split_once('/').ok_or_else(error)?;
    let attempts = attempts.trim().parse::<NonZeroU32>().map_err(|_| error())?;
    let period = duration(POSITIVE, MAX_LOGIN_RATE_PERIOD)(period)
        .map_err(|error| format!("{value:?}: the period {error}"))?;
    // The limit is counted in milliseconds: an attempt every 0 ms would be no limit at all.
    if period.as_millis() < u128::from(attempts.get()) {
        return Err(format!(
            "{value:?} allows more than one attempt per millisecond"
        ));
    }
    Ok(LoginRateSetting(Some(LoginRate { attempts, period })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        args: ServerArgs,
    }

    fn config(flags: &[&str]) -> Result<Config, ConfigError> {
        let cli = TestCli::try_parse_from(std::iter::once("tollgate").chain(flags.iter().copied()))
            .map_err(|error| {
                setting_error(&error, &TestCli::command())
                    .unwrap_or_else(|| panic!("not about a setting: {error}"))
            })?;
        Config::from_args(&cli.args, "sqlite://tollgate.db")
    }

    #[test]
    fn defaults_follow_the_design() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.access_ttl, Duration::from_secs(15 * 60));
        assert_eq!(config.refresh_ttl, Duration::from_secs(30 * 86400));
        assert_eq!(config.session_max_age, Duration::from_secs(90 * 86400));
        assert_eq!(config.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(config.session_limit.max_sessions, 5);
        assert_eq!(config.session_limit.policy, SessionLimitPolicy::RevokeAll);
        assert_eq!(config.signing.algorithm, Algorithm::EdDSA);
        assert_eq!(config.issuer, "tollgate");
        assert_eq!(config.audience, "tollgate-api");
        assert!(config.cors_origins.is_empty());
        assert!(!config.require_fingerprint);
        assert!(!config.signup_open);
        assert!(config.smtp_url.is_none());
        assert_eq!(
            config.audit_retention,
            Some(Duration::from_secs(90 * 86400))
        );
        assert_eq!(config.public_url, "http://127.0.0.1:8000");
    }

    #[test]
    fn each_bad_setting_is_named() {
        for (flags, variable) in [
            (&["--access-ttl", "soon"][..], "TOLLGATE_ACCESS_TTL"),
            (&["--refresh-ttl", "0s"], "TOLLGATE_REFRESH_TTL"),
            (&["--signup", "maybe"], "TOLLGATE_SIGNUP"),
            (&["--log-format", "xml"], "TOLLGATE_LOG_FORMAT"),
            (&["--smtp-url", "mail.example.com"], "TOLLGATE_SMTP_URL"),
            (&["--mail-from", "not an address"], "TOLLGATE_MAIL_FROM"),
            (&["--public-url", "example.com"], "TOLLGATE_PUBLIC_URL"),
            (
                &["--smtp-url", "smtp://localhost:25"],
                "TOLLGATE_PUBLIC_URL",
            ),
            (
                &["--audit-retention", "forever"],
                "TOLLGATE_AUDIT_RETENTION",
            ),
            (&["--max-sessions", "0"], "TOLLGATE_MAX_SESSIONS"),
            (
                &["--session-limit-policy", "random"],
                "TOLLGATE_SESSION_LIMIT_POLICY",
            ),
            (&["--jwt-alg", "none"], "TOLLGATE_JWT_ALG"),
            (&["--jwt-alg", "HS256"], "TOLLGATE_JWT_SECRET"),
            (
                &["--jwt-alg", "HS256", "--jwt-secret", "short"],
                "TOLLGATE_JWT_SECRET",
            ),
            (&["--cors-origins", "*"], "TOLLGATE_CORS_ORIGINS"),
            (&["--login-rate", "10"], "TOLLGATE_LOGIN_RATE"),
            (&["--addr", "localhost"], "TOLLGATE_ADDR"),
            (
                &["--require-fingerprint", "maybe"],
                "TOLLGATE_REQUIRE_FINGERPRINT",
            ),
            (&["--database-url", "mysql://x"], "TOLLGATE_DATABASE_URL"),
            (&["--db-pool-size", "none"], "TOLLGATE_DB_POOL_SIZE"),
            (&["--db-timeout", "0s"], "TOLLGATE_DB_TIMEOUT"),
            (
                &["--trusted-proxies", "10.0.0.0/33"],
                "TOLLGATE_TRUSTED_PROXIES",
            ),
            (&["--request-timeout", "never"], "TOLLGATE_REQUEST_TIMEOUT"),
            (&["--sweep-interval", "0s"], "TOLLGATE_SWEEP_INTERVAL"),
            (&["--sweep-interval", "10ms"], "TOLLGATE_SWEEP_INTERVAL"),
            (&["--db-timeout", "500us"], "TOLLGATE_DB_TIMEOUT"),
            (
                &["--sqlite-synchronous", "off"],
                "TOLLGATE_SQLITE_SYNCHRONOUS",
            ),
            (
                &["--introspection-secrets", "short"],
                "TOLLGATE_INTROSPECTION_SECRETS",
            ),
        ] {
            let error = config(flags).expect_err(variable);
            assert_eq!(error.variable, variable, "{flags:?}");
        }
    }

    #[test]
    fn every_duration_setting_has_a_maximum() {
        for (flag, variable, max) in [
            ("--access-ttl", "TOLLGATE_ACCESS_TTL", "1day"),
            ("--refresh-ttl", "TOLLGATE_REFRESH_TTL", "365days"),
            ("--session-max-age", "TOLLGATE_SESSION_MAX_AGE", "3650days"),
            (
                "--refresh-reuse-grace",
                "TOLLGATE_REFRESH_REUSE_GRACE",
                "1h",
            ),
            ("--request-timeout", "TOLLGATE_REQUEST_TIMEOUT", "1h"),
            ("--sweep-interval", "TOLLGATE_SWEEP_INTERVAL", "1day"),
            ("--db-timeout", "TOLLGATE_DB_TIMEOUT", "10m"),
            ("--revocation-poll", "TOLLGATE_REVOCATION_POLL", "1h"),
        ] {
            config(&[flag, max]).unwrap_or_else(|e| panic!("{flag} {max}: {e}"));
            let over = format!("{max} 1s");
            let error = config(&[flag, &over]).expect_err(variable);
            assert_eq!(error.variable, variable, "{flag} {over}");
            assert!(error.message.contains("maximum"), "{}", error.message);
            let error = config(&[flag, "99999999999999d"]).expect_err(variable);
            assert_eq!(error.variable, variable);
        }
        for rate in ["10/1day", "86400000/1day"] {
            config(&["--login-rate", rate]).unwrap_or_else(|e| panic!("{rate}: {e}"));
        }
        for rate in ["10/1day 1s", "1001/1s", "4294967295/1m"] {
            let error = config(&["--login-rate", rate]).expect_err(rate);
            assert_eq!(error.variable, "TOLLGATE_LOGIN_RATE");
        }
        for (flag, variable, value) in [
            ("--max-sessions", "TOLLGATE_MAX_SESSIONS", "10001"),
            ("--db-pool-size", "TOLLGATE_DB_POOL_SIZE", "1001"),
        ] {
            let error = config(&[flag, value]).expect_err(variable);
            assert_eq!(error.variable, variable);
        }
        assert!(key_activation_delay("1day").is_ok());
        assert!(key_activation_delay("1day 1s").is_err());
    }

    #[test]
    fn a_bad_value_names_the_variable_of_a_subcommand_flag_or_the_flag_alone() {
        use crate::cli::Cli;
        let error = |args: &[&str]| {
            let error = Cli::try_parse_from(args).expect_err("a bad value");
            setting_error(&error, &Cli::command()).expect("about a setting")
        };
        let bad = error(&["tollgate", "serve", "--access-ttl", "soon"]);
        assert_eq!(bad.variable, "TOLLGATE_ACCESS_TTL");
        assert!(bad.message.contains("\"soon\""), "{}", bad.message);
        let bad = error(&["tollgate", "migrate", "--db-pool-size", "0"]);
        assert_eq!(bad.variable, "TOLLGATE_DB_POOL_SIZE");
        // `keys rotate --activate-after` has no variable.
        let bad = error(&["tollgate", "keys", "rotate", "--activate-after", "2d"]);
        assert_eq!(bad.variable, "--activate-after");
        assert_eq!(
            bad.to_string(),
            "invalid setting --activate-after: \"2d\" is longer than the maximum, 1day"
        );
        let bad = error(&["tollgate", "serve", "--access-ttl"]);
        assert_eq!(bad.message, "needs a value");
        // Help and unknown flags are clap's to report.
        let help = Cli::try_parse_from(["tollgate", "--help"]).expect_err("help");
        assert!(setting_error(&help, &Cli::command()).is_none());
    }

    #[test]
    fn a_refused_value_of_a_hidden_setting_is_not_repeated() {
        use clap::{Arg, Command};
        let command = Command::new("tollgate").arg(
            Arg::new("secret")
                .long("secret")
                .env("TOLLGATE_TEST_SECRET")
                .hide_env_values(true)
                .value_parser(|value: &str| Err::<String, String>(format!("{value:?} is bad"))),
        );
        let error = command
            .clone()
            .try_get_matches_from(["tollgate", "--secret", "hunter2"])
            .expect_err("refused");
        let bad = setting_error(&error, &command).expect("about a setting");
        assert_eq!(bad.variable, "TOLLGATE_TEST_SECRET");
        assert!(!bad.to_string().contains("hunter2"), "{bad}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let config = config(&[
            "--jwt-alg",
            "HS256",
            "--jwt-secret",
            "0123456789abcdef0123456789abcdef",
        ])
        .expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("0123456789abcdef"), "{printed}");
        assert!(printed.contains("REDACTED"));
    }

    #[test]
    fn login_rate_parses_attempts_per_period() {
        let config = config(&["--login-rate", "5/30s"]).expect("valid");
        let rate = config.login_rate.expect("enabled");
        assert_eq!(rate.attempts.get(), 5);
        assert_eq!(rate.period, Duration::from_secs(30));
        assert!(self::config(&["--login-rate", "off"])
            .expect("valid")
            .login_rate
            .is_none());
    }
}
