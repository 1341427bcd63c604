//! The `tollgate` command line.

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::app::{shutdown_signal, Application, StartError};
use crate::audit::{Client, Event};
use crate::config::{
    Config, ConfigError, LogFormat, ServerArgs, SigningArgs, SigningConfig, StoreArgs, StoreConfig,
};
use crate::store;
use crate::users::{self, NewUser, Passwords};

const DEFAULT_DATABASE_URL: &str = "sqlite://tollgate.db";

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Self-hosted JWT authorization server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and the web client.
    Serve(ServerArgs),
    /// Serve with the demo users (user1, user2, user3; password "password"), added where missing.
    Demo(ServerArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create or update the database schema, then exit.
    Migrate(StoreArgs),
    /// Write a consistent copy of a SQLite store (running or not) to FILE, a new file.
    /// PostgreSQL: use pg_dump or point-in-time recovery instead.
    Backup {
        file: std::path::PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from a prompt or from standard input.
    Add(UserAddArgs),
    /// Set a user's password (prompt or standard input) and sign them out everywhere.
    Passwd {
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add or remove roles (`admin` grants the admin API); prints the roles held after.
    Role {
        username: String,
        /// A role to add (repeatable).
        #[arg(long = "add", value_name = "ROLE")]
        add: Vec<String>,
        /// A role to remove (repeatable).
        #[arg(long = "remove", value_name = "ROLE")]
        remove: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable a user: no sign-in, every session revoked.
    Disable {
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Enable a disabled user again.
    Enable {
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    pub username: String,
    #[arg(long, default_value = "")]
    pub email: String,
    #[arg(long, default_value = "")]
    pub first_name: String,
    #[arg(long, default_value = "")]
    pub last_name: String,
    #[arg(long, default_value = "")]
    pub gender: String,
    #[arg(long, default_value = "")]
    pub phone: String,
    #[arg(long, default_value = "")]
    pub city: String,
    /// A role to give the user (repeatable), such as `admin`.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Publish a new signing key now and sign with it from `--activate-after` on; the old key
    /// keeps verifying until its tokens expire.
    Rotate {
        /// How long the new key is only published before it signs: longer than every running
        /// instance's TOLLGATE_SWEEP_INTERVAL, so that all of them verify its tokens first.
        #[arg(long, default_value = "1m", value_parser = crate::config::key_activation_delay)]
        activate_after: std::time::Duration,
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        signing: SigningArgs,
    },
}

impl Cli {
    /// How this command's log lines are written.
    pub fn log_format(&self) -> LogFormat {
        match &self.command {
            Command::Serve(args) | Command::Demo(args) => args.log_format,
            _ => LogFormat::from_env(),
        }
    }
}

/// A failure that `main` reports: a bad setting (exit code 2) or anything else (exit code 1).
pub enum Failure {
    Setting(ConfigError),
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        let error = error.into();
        match error.downcast::<ConfigError>() {
            Ok(setting) => Failure::Setting(setting),
            Err(other) => Failure::Other(other),
        }
    }
}

pub async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve(args) => serve(Config::from_args(&args, DEFAULT_DATABASE_URL)?, false).await,
        Command::Demo(args) => {
            let signup = args.signup;
            let fresh =
                std::env::temp_dir().join(format!("tollgate-demo-{}.db", uuid::Uuid::new_v4()));
            let default = format!("sqlite://{}", fresh.display());
            let mut config = Config::from_args(&args, &default)?;
            // The demo lets visitors sign up unless told otherwise.
            config.signup_open = signup.unwrap_or(true);
            serve(config, true).await
        }
        Command::Migrate(args) => migrate(&args).await,
        Command::Backup { file, store } => backup(&file, &store).await,
        Command::User(UserCommand::Add(args)) => add_user(args).await,
        Command::User(UserCommand::Passwd { username, store }) => {
            change_password(&username, &store).await
        }
        Command::User(UserCommand::Role {
            username,
            add,
            remove,
            store,
        }) => change_roles(&username, &add, &remove, &store).await,
        Command::User(UserCommand::Disable { username, store }) => {
            set_disabled(&username, true, &store).await
        }
        Command::User(UserCommand::Enable { username, store }) => {
            set_disabled(&username, false, &store).await
        }
        Command::Keys(KeysCommand::Rotate {
            activate_after,
            store,
            signing,
        }) => rotate_keys(activate_after, &store, &signing).await,
    }
}

async fn migrate(args: &StoreArgs) -> Result<(), Failure> {
    let store = StoreConfig::from_args(args, DEFAULT_DATABASE_URL);
    store::connect(&store.url, &store.options)
        .await
        .context("migration failed")?
        .close()
        .await;
    println!("database schema is up to date");
    Ok(())
}

async fn backup(file: &std::path::Path, args: &StoreArgs) -> Result<(), Failure> {
    let store = StoreConfig::from_args(args, DEFAULT_DATABASE_URL);
    if store.url.starts_with("postgres:") || store.url.starts_with("postgresql:") {
        return Err(anyhow::anyhow!(
            "backup copies SQLite stores; for PostgreSQL use pg_dump or point-in-time recovery"
        )
        .into());
    }
    if file.exists() {
        return Err(anyhow::anyhow!("{} exists; back up to a new file", file.display()).into());
    }
    let pages = store::backup_sqlite(&store.url, file)
        .await
        .context("backup failed")?;
    println!("backup of {} pages written to {}", pages, file.display());
    Ok(())
}

async fn add_user(args: UserAddArgs) -> Result<(), Failure> {
    let store = open_store(&args.store).await?;
    let passwords = Passwords::new().await?;
    let password = read_password()?;
    let new = NewUser {
        username: args.username,
        email: args.email,
        first_name: args.first_name,
        last_name: args.last_name,
        gender: args.gender,
        phone: args.phone,
        city: args.city,
        roles: args.roles,
    };
    let added = async {
        users::policy::check_new_password(&password, &new.username)?;
        let user = users::create_user(store.as_ref(), &passwords, new, password).await?;
        let detail = format!("roles: [{}]", user.roles.join(", "));
        audit(
            store.as_ref(),
            Event::new("cli_create_user", "ok")
                .user(&user)
                .detail(detail),
        )
        .await?;
        anyhow::Ok(user)
    }
    .await;
    store.close().await;
    let user = added?;
    println!("added user {} ({})", user.username, user.id);
    Ok(())
}

async fn change_password(username: &str, args: &StoreArgs) -> Result<(), Failure> {
    let store = open_store(args).await?;
    let passwords = Passwords::new().await?;
    let password = read_password()?;
    let changed = async {
        let revoked = users::change_password(store.as_ref(), &passwords, username, password)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no user named {username:?}"))?;
        let user = find_user(store.as_ref(), username).await?;
        let detail = format!("{} sessions revoked", revoked.len());
        audit(
            store.as_ref(),
            Event::new("cli_password_change", "ok")
                .user(&user)
                .detail(detail),
        )
        .await
    }
    .await;
    store.close().await;
    changed?;
    println!("password changed; every session of {username} is revoked");
    Ok(())
}

async fn change_roles(
    username: &str,
    add: &[String],
    remove: &[String],
    args: &StoreArgs,
) -> Result<(), Failure> {
    let store = open_store(args).await?;
    let changed = async {
        let user = find_user(store.as_ref(), username).await?;
        let roles: Vec<&String> = user
            .roles
            .iter()
            .chain(add)
            .filter(|role| !remove.contains(role))
            .collect();
        let roles = users::policy::normalize_roles(&roles)?;
        store.set_roles(user.id, &roles).await?;
        let mut detail = format!("roles: [{}]", roles.join(", "));
        // Tokens carrying a role taken away must stop now, not when they expire.
        if user.roles.iter().any(|role| !roles.contains(role)) {
            let ended = store
                .revoke_sessions_of(user.id, None, time::OffsetDateTime::now_utc())
                .await?;
            detail.push_str(&format!(
                "; a role was removed: {} sessions revoked",
                ended.len()
            ));
        }
        audit(
            store.as_ref(),
            Event::new("cli_set_roles", "ok").user(&user).detail(detail),
        )
        .await?;
        anyhow::Ok(roles)
    }
    .await;
    store.close().await;
    let roles = changed?;
    println!("{username} has roles: [{}]", roles.join(", "));
    println!("sessions get added roles at their next refresh; a removed role signs the user out");
    Ok(())
}

async fn set_disabled(username: &str, disabled: bool, args: &StoreArgs) -> Result<(), Failure> {
    let store = open_store(args).await?;
    let changed = async {
        let user = find_user(store.as_ref(), username).await?;
        let revoked = store
            .set_disabled(user.id, disabled, time::OffsetDateTime::now_utc())
            .await?
            .ok_or_else(|| anyhow::anyhow!("no user named {username:?}"))?;
        let event = if disabled {
            Event::new("cli_disable_user", "ok")
                .detail(format!("{} sessions revoked", revoked.len()))
        } else {
            Event::new("cli_enable_user", "ok")
        };
        audit(store.as_ref(), event.user(&user)).await
    }
    .await;
    store.close().await;
    changed?;
    if disabled {
        println!("{username} is disabled; every session is revoked");
    } else {
        println!("{username} is enabled");
    }
    Ok(())
}

async fn find_user(store: &dyn store::Store, username: &str) -> anyhow::Result<store::User> {
    store
        .find_user_by_username(username)
        .await?
        .map(|(user, _)| user)
        .ok_or_else(|| anyhow::anyhow!("no user named {username:?}"))
}

/// Records what the command line did: written at once, the process ends next.
async fn audit(store: &dyn store::Store, event: Event) -> anyhow::Result<()> {
    let command_line = Client {
        ip: None,
        user_agent: Some("tollgate command line".into()),
    };
    store.insert_audit(&[event.stamped(&command_line)]).await?;
    Ok(())
}

async fn rotate_keys(
    activate_after: std::time::Duration,
    args: &StoreArgs,
    signing: &SigningArgs,
) -> Result<(), Failure> {
    let signing = SigningConfig::from_args(signing)?;
    if signing.secret.is_some() {
        return Err(anyhow::anyhow!(
            "HS256 has no stored keys: change TOLLGATE_JWT_SECRET to rotate"
        )
        .into());
    }
    let store = open_store(args).await?;
    let rotated =
        crate::tokens::rotate_key(store.as_ref(), signing.algorithm, activate_after).await;
    store.close().await;
    let (kid, activates_at) = rotated?;
    println!("new key {kid} published; it signs from {activates_at} on");
    Ok(())
}

async fn open_store(args: &StoreArgs) -> Result<std::sync::Arc<dyn store::Store>, Failure> {
    let store = StoreConfig::from_args(args, DEFAULT_DATABASE_URL);
    Ok(store::connect(&store.url, &store.options)
        .await
        .context("cannot open the store")?)
}

async fn serve(config: Config, demo: bool) -> Result<(), Failure> {
    let database = redact_url(&config.store.url);
    let algorithm = config.signing.algorithm;
    let app = Application::build(config)
        .await
        .map_err(|error| match error {
            StartError::Setting(setting) => Failure::Setting(setting),
            other => other.into(),
        })?;
    if demo {
        let passwords = Passwords::new().await?;
        let added = users::seed_demo(app.store().as_ref(), &passwords).await?;
        tracing::info!(
            added,
            "demo users user1, user2, user3 (password \"password\") ready"
        );
    }
    tracing::info!(%database, alg = ?algorithm, "listening on {}", app.url());
    app.run_until(shutdown_signal())
        .await
        .context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// A database URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://[REDACTED]{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// From a prompt when standard input is a terminal, else its first line.
fn read_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        if rpassword::prompt_password("Again: ")? != first {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        bail!("the password must not be empty");
    }
    Ok(password)
}
