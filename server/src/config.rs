//! Settings: each is an environment variable and the matching flag (the flag wins), validated
//! into a typed [`Config`] before anything starts.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::HeaderValue;
use clap::Args;
use ipnet::IpNet;
use jsonwebtoken::Algorithm;

use crate::store::{SessionLimit, SessionLimitPolicy, StoreOptions};

/// The settings of `serve` and `demo`, as given.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "TOLLGATE_ADDR", default_value = "127.0.0.1:8000")]
    pub addr: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Lifetime of an access token.
    #[arg(long, env = "TOLLGATE_ACCESS_TTL", default_value = "15m")]
    pub access_ttl: String,
    /// Lifetime of each refresh token from its issue (idle expiry of a session).
    #[arg(long, env = "TOLLGATE_REFRESH_TTL", default_value = "30d")]
    pub refresh_ttl: String,
    /// Absolute expiry of a session from its login.
    #[arg(long, env = "TOLLGATE_SESSION_MAX_AGE", default_value = "90d")]
    pub session_max_age: String,
    /// How long the previous refresh token still answers after a rotation (two tabs, retries).
    #[arg(long, env = "TOLLGATE_REFRESH_REUSE_GRACE", default_value = "10s")]
    pub refresh_reuse_grace: String,
    /// Live sessions (devices) a user may have.
    #[arg(long, env = "TOLLGATE_MAX_SESSIONS", default_value = "5")]
    pub max_sessions: String,
    /// `revoke-all` or `evict-oldest`.
    #[arg(
        long,
        env = "TOLLGATE_SESSION_LIMIT_POLICY",
        default_value = "revoke-all"
    )]
    pub session_limit_policy: String,
    /// Require a device fingerprint at login and refresh.
    #[arg(long, env = "TOLLGATE_REQUIRE_FINGERPRINT", default_value = "false")]
    pub require_fingerprint: String,
    #[command(flatten)]
    pub signing: SigningArgs,
    /// Issuer (`iss`) of the tokens.
    #[arg(long, env = "TOLLGATE_ISSUER", default_value = "tollgate")]
    pub issuer: String,
    /// Audience (`aud`) of the tokens.
    #[arg(long, env = "TOLLGATE_AUDIENCE", default_value = "tollgate-api")]
    pub audience: String,
    /// Comma-separated origins allowed by CORS, such as `http://localhost:4200`.
    #[arg(long, env = "TOLLGATE_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// Directory of the built web client.
    #[arg(
        long,
        env = "TOLLGATE_WEB_DIR",
        default_value = "web/dist/tollgate-web/browser"
    )]
    pub web_dir: PathBuf,
    /// Comma-separated proxies (IPs or CIDR ranges) whose `X-Forwarded-For` is believed.
    #[arg(long, env = "TOLLGATE_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Longest time to read a request's headers, and to answer it.
    #[arg(long, env = "TOLLGATE_REQUEST_TIMEOUT", default_value = "30s")]
    pub request_timeout: String,
    /// How often dead sessions are deleted and keys rotated elsewhere picked up.
    #[arg(long, env = "TOLLGATE_SWEEP_INTERVAL", default_value = "30s")]
    pub sweep_interval: String,
    /// Sign-in attempts allowed per client IP and per username, as `N/PERIOD`, or `off`.
    #[arg(long, env = "TOLLGATE_LOGIN_RATE", default_value = "10/1m")]
    pub login_rate: String,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// `sqlite://FILE` or `postgres://…` (default `sqlite://tollgate.db`; `demo`: a fresh file).
    #[arg(long, env = "TOLLGATE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Most database connections this instance opens.
    #[arg(long, env = "TOLLGATE_DB_POOL_SIZE", default_value = "10")]
    pub db_pool_size: String,
    /// Longest wait for a connection or a statement before the store counts as unavailable.
    #[arg(long, env = "TOLLGATE_DB_TIMEOUT", default_value = "5s")]
    pub db_timeout: String,
    /// SQLite: `full` (every commit on disk before it is confirmed) or `normal` (faster;
    /// a power loss may undo the last commits).
    #[arg(long, env = "TOLLGATE_SQLITE_SYNCHRONOUS", default_value = "full")]
    pub sqlite_synchronous: String,
}

#[derive(Debug, Clone, Args)]
pub struct SigningArgs {
    /// `EdDSA`, `ES256`, `RS256` or `HS256`.
    #[arg(long, env = "TOLLGATE_JWT_ALG", default_value = "EdDSA")]
    pub jwt_alg: String,
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

/// A setting that cannot be used, with the variable and flag that name it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {variable} (--{flag}): {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub flag: &'static str,
    pub message: String,
}

fn invalid(variable: &'static str, flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        flag,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRate {
    pub attempts: NonZeroU32,
    pub period: Duration,
}

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
    pub web_dir: PathBuf,
    pub trusted_proxies: Vec<IpNet>,
    pub request_timeout: Duration,
    pub sweep_interval: Duration,
    pub login_rate: Option<LoginRate>,
}

impl Config {
    /// Validates the settings; `default_database_url` is used when none is given.
    pub fn from_args(args: &ServerArgs, default_database_url: &str) -> Result<Config, ConfigError> {
        let positive = |variable, flag, value: &str, max| {
            parse_duration(variable, flag, value, Some(max)).and_then(|parsed| {
                if parsed.is_zero() {
                    return Err(invalid(variable, flag, "must be longer than 0s"));
                }
                Ok(parsed)
            })
        };
        let addr = args.addr.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "TOLLGATE_ADDR",
                "addr",
                format!("{:?} is not an address such as 127.0.0.1:8000", args.addr),
            )
        })?;
        let max_sessions = args
            .max_sessions
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_SESSIONS_LIMIT).contains(n))
            .ok_or_else(|| {
                invalid(
                    "TOLLGATE_MAX_SESSIONS",
                    "max-sessions",
                    format!(
                        "{:?} is not a whole number from 1 to {MAX_SESSIONS_LIMIT}",
                        args.max_sessions
                    ),
                )
            })?;
        let policy = match args.session_limit_policy.as_str() {
            "revoke-all" => SessionLimitPolicy::RevokeAll,
            "evict-oldest" => SessionLimitPolicy::EvictOldest,
            other => {
                return Err(invalid(
                    "TOLLGATE_SESSION_LIMIT_POLICY",
                    "session-limit-policy",
                    format!("{other:?} is neither revoke-all nor evict-oldest"),
                ))
            }
        };
        let require_fingerprint = parse_bool(&args.require_fingerprint).ok_or_else(|| {
            invalid(
                "TOLLGATE_REQUIRE_FINGERPRINT",
                "require-fingerprint",
                format!("{:?} is neither true nor false", args.require_fingerprint),
            )
        })?;
        let non_empty = |variable, flag, value: &str| {
            if value.trim().is_empty() {
                Err(invalid(variable, flag, "must not be empty"))
            } else {
                Ok(value.to_owned())
            }
        };
        let cors_origins = args
            .cors_origins
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                parse_origin(origin).ok_or_else(|| {
                    invalid(
                        "TOLLGATE_CORS_ORIGINS",
                        "cors-origins",
                        format!("{origin:?} is not an origin such as http://localhost:4200"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            addr,
            store: StoreConfig::from_args(&args.store, default_database_url)?,
            access_ttl: positive(
                "TOLLGATE_ACCESS_TTL",
                "access-ttl",
                &args.access_ttl,
                MAX_ACCESS_TTL,
            )?,
            refresh_ttl: positive(
                "TOLLGATE_REFRESH_TTL",
                "refresh-ttl",
                &args.refresh_ttl,
                MAX_REFRESH_TTL,
            )?,
            session_max_age: positive(
                "TOLLGATE_SESSION_MAX_AGE",
                "session-max-age",
                &args.session_max_age,
                MAX_SESSION_MAX_AGE,
            )?,
            refresh_reuse_grace: parse_duration(
                "TOLLGATE_REFRESH_REUSE_GRACE",
                "refresh-reuse-grace",
                &args.refresh_reuse_grace,
                Some(MAX_REUSE_GRACE),
            )?,
            session_limit: SessionLimit {
                max_sessions,
                policy,
            },
            require_fingerprint,
            signing: SigningConfig::from_args(&args.signing)?,
            issuer: non_empty("TOLLGATE_ISSUER", "issuer", &args.issuer)?,
            audience: non_empty("TOLLGATE_AUDIENCE", "audience", &args.audience)?,
            cors_origins,
            web_dir: args.web_dir.clone(),
            trusted_proxies: parse_proxies(&args.trusted_proxies)?,
            request_timeout: positive(
                "TOLLGATE_REQUEST_TIMEOUT",
                "request-timeout",
                &args.request_timeout,
                MAX_REQUEST_TIMEOUT,
            )?,
            sweep_interval: at_least(
                "TOLLGATE_SWEEP_INTERVAL",
                "sweep-interval",
                positive(
                    "TOLLGATE_SWEEP_INTERVAL",
                    "sweep-interval",
                    &args.sweep_interval,
                    MAX_SWEEP_INTERVAL,
                )?,
                MIN_SWEEP_INTERVAL,
            )?,
            login_rate: parse_login_rate(&args.login_rate)?,
        })
    }
}

impl SigningConfig {
    pub fn from_args(args: &SigningArgs) -> Result<SigningConfig, ConfigError> {
        let algorithm = match args.jwt_alg.as_str() {
            "EdDSA" => Algorithm::EdDSA,
            "ES256" => Algorithm::ES256,
            "RS256" => Algorithm::RS256,
            "HS256" => Algorithm::HS256,
            other => {
                return Err(invalid(
                    "TOLLGATE_JWT_ALG",
                    "jwt-alg",
                    format!("{other:?} is not one of EdDSA, ES256, RS256, HS256"),
                ))
            }
        };
        let secret = match (&args.jwt_secret, algorithm) {
            (None, Algorithm::HS256) => {
                return Err(invalid(
                    "TOLLGATE_JWT_SECRET",
                    "jwt-secret",
                    "is required with HS256",
                ))
            }
            (Some(secret), Algorithm::HS256) if secret.expose().len() < 32 => {
                return Err(invalid(
                    "TOLLGATE_JWT_SECRET",
                    "jwt-secret",
                    "must be at least 32 bytes",
                ))
            }
            (Some(secret), Algorithm::HS256) => Some(secret.clone()),
            _ => None,
        };
        Ok(SigningConfig { algorithm, secret })
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: String,
    pub options: StoreOptions,
}

impl StoreConfig {
    /// Validates the store settings; `default_url` is used when none is given.
    pub fn from_args(args: &StoreArgs, default_url: &str) -> Result<StoreConfig, ConfigError> {
        let url = args
            .database_url
            .clone()
            .unwrap_or_else(|| default_url.to_owned());
        let known = ["sqlite:", "postgres:", "postgresql:"];
        if !known.iter().any(|scheme| url.starts_with(scheme)) {
            return Err(invalid(
                "TOLLGATE_DATABASE_URL",
                "database-url",
                "must start with sqlite: or postgres:",
            ));
        }
        let pool_size = args
            .db_pool_size
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_DB_POOL_SIZE).contains(n))
            .ok_or_else(|| {
                invalid(
                    "TOLLGATE_DB_POOL_SIZE",
                    "db-pool-size",
                    format!(
                        "{:?} is not a whole number from 1 to {MAX_DB_POOL_SIZE}",
                        args.db_pool_size
                    ),
                )
            })?;
        let timeout = parse_duration(
            "TOLLGATE_DB_TIMEOUT",
            "db-timeout",
            &args.db_timeout,
            Some(MAX_DB_TIMEOUT),
        )?;
        // PostgreSQL's statement_timeout is in whole milliseconds, and 0 would mean none.
        let timeout = at_least("TOLLGATE_DB_TIMEOUT", "db-timeout", timeout, MIN_DB_TIMEOUT)?;
        let durable_commits = match args.sqlite_synchronous.as_str() {
            "full" => true,
            "normal" => false,
            other => {
                return Err(invalid(
                    "TOLLGATE_SQLITE_SYNCHRONOUS",
                    "sqlite-synchronous",
                    format!("{other:?} is neither full nor normal"),
                ))
            }
        };
        Ok(StoreConfig {
            url,
            options: StoreOptions {
                pool_size,
                timeout,
                durable_commits,
            },
        })
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

fn parse_origin(origin: &str) -> Option<HeaderValue> {
    let (scheme, rest) = origin.split_once("://")?;
    let valid = matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', ' ', '*']);
    valid.then(|| HeaderValue::from_str(origin).ok()).flatten()
}

/// `10.0.0.1, 10.1.0.0/16`: single addresses or ranges.
fn parse_proxies(value: &str) -> Result<Vec<IpNet>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    invalid(
                        "TOLLGATE_TRUSTED_PROXIES",
                        "trusted-proxies",
                        format!("{entry:?} is neither an IP address nor a CIDR range"),
                    )
                })
        })
        .collect()
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
pub const MAX_SESSIONS_LIMIT: u32 = 10_000;
pub const MAX_DB_POOL_SIZE: u32 = 1_000;

// Lower bounds where a tiny value would do harm: a sweep loop hammering the database, a
// database timeout that rounds to "no timeout".
pub const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
pub const MIN_DB_TIMEOUT: Duration = Duration::from_millis(1);

fn at_least(
    variable: &'static str,
    flag: &'static str,
    value: Duration,
    min: Duration,
) -> Result<Duration, ConfigError> {
    if value < min {
        return Err(invalid(
            variable,
            flag,
            format!("must be at least {}", humantime::format_duration(min)),
        ));
    }
    Ok(value)
}

/// A duration such as `15m` or `30d`, at most `max`.
fn parse_duration(
    variable: &'static str,
    flag: &'static str,
    value: &str,
    max: Option<Duration>,
) -> Result<Duration, ConfigError> {
    let parsed = humantime::parse_duration(value.trim())
        .map_err(|e| invalid(variable, flag, format!("{value:?} is not a duration ({e})")))?;
    match max {
        Some(max) if parsed > max => Err(invalid(
            variable,
            flag,
            format!(
                "{value:?} is longer than the maximum, {}",
                humantime::format_duration(max)
            ),
        )),
        _ => Ok(parsed),
    }
}

/// `keys rotate --activate-after`: how long a new key is only published before it signs.
pub fn parse_key_activation_delay(value: &str) -> Result<Duration, String> {
    parse_duration(
        "TOLLGATE_KEY_ACTIVATE_AFTER",
        "activate-after",
        value,
        Some(MAX_KEY_ACTIVATION_DELAY),
    )
    .map_err(|error| error.message)
}

fn parse_login_rate(value: &str) -> Result<Option<LoginRate>, ConfigError> {
    if value == "off" {
        return Ok(None);
    }
    let error = || {
        invalid(
            "TOLLGATE_LOGIN_RATE",
            "login-rate",
            format!("{value:?} is neither N/PERIOD (such as 10/1m) nor off"),
        )
    };
    let (attempts, period) = value.split_once('/').ok_or_else(error)?;
    let attempts = attempts.trim().parse::<NonZeroU32>().map_err(|_| error())?;
    let period = parse_duration(
        "TOLLGATE_LOGIN_RATE",
        "login-rate",
        period,
        Some(MAX_LOGIN_RATE_PERIOD),
    )?;
    // The limit is counted in milliseconds: an attempt every 0 ms would be no limit at all.
    if period.as_millis() < u128::from(attempts.get()) {
        return Err(invalid(
            "TOLLGATE_LOGIN_RATE",
            "login-rate",
            format!("{value:?} allows more than one attempt per millisecond"),
        ));
    }
    Ok(Some(LoginRate { attempts, period }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        args: ServerArgs,
    }

    fn config(flags: &[&str]) -> Result<Config, ConfigError> {
        let cli = TestCli::try_parse_from(std::iter::once("tollgate").chain(flags.iter().copied()))
            .expect("flags parse");
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
    }

    #[test]
    fn each_bad_setting_is_named() {
        for (flags, variable) in [
            (&["--access-ttl", "soon"][..], "TOLLGATE_ACCESS_TTL"),
            (&["--refresh-ttl", "0s"], "TOLLGATE_REFRESH_TTL"),
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
        assert!(parse_key_activation_delay("1day").is_ok());
        assert!(parse_key_activation_delay("1day 1s").is_err());
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
