//! Wiring: store, keys, services and the HTTP server, with background maintenance and
//! graceful shutdown.

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_io_timeout::TimeoutStream;
use tokio_rustls::TlsAcceptor;

use crate::audit::Audit;
use crate::config::{Config, ConfigError, DpopMode};
use crate::http::{self, AppState, Shared, WebClient};
use crate::mail::{MailError, Mailer};
use crate::sessions::{AuthError, LoginLimiter, SessionPolicy, Sessions};
use crate::store::{self, Store, StoreError};
use crate::tls::Certificates;
use crate::tokens::{self, Lifetimes, TokenError, Tokens};
use crate::users::{Accounts, Passwords, UserError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting that names a file which cannot be used (TLS, the web client's directory).
    #[error(transparent)]
    Setting(#[from] ConfigError),
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    #[error("cannot load the signing keys")]
    Keys(#[from] TokenError),
    #[error("cannot prepare password hashing")]
    Passwords(#[from] UserError),
    #[error("cannot set up mail")]
    Mail(#[from] MailError),
    #[error("cannot read the revoked sessions")]
    Revocations(#[source] AuthError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    tls: Option<Arc<Certificates>>,
}

impl Application {
    /// Opens the store, loads keys and binds the listener; `addr` port 0 picks a free port.
    pub async fn build(config: Config) -> Result<Application, StartError> {
        // Files first: a wrong path stops the start before anything is opened.
        let tls = config.tls.clone().map(Certificates::load).transpose()?;
        let web = WebClient::new(config.web_dir.as_deref())?;
        let store = store::connect(&config.store.url, &config.store.options).await?;
        let lifetimes = Lifetimes {
            access: config.access_ttl,
            longest: config
                .access_ttl
                .max(config.refresh_ttl)
                .max(config.session_max_age),
        };
        let dpop = tokens::dpop(&config, &store).await?;
        let tokens = Arc::new(
            Tokens::load(
                store.clone(),
                &config.signing,
                &config.issuer,
                &config.audience,
                lifetimes,
                dpop,
            )
            .await?,
        );
        let passwords = Arc::new(Passwords::new().await?);
        let audit = match config.audit_retention {
            Some(_) => Audit::start(store.clone()),
            None => Audit::off(),
        };
        let mailer = match &config.smtp_url {
            Some(url) => Some(Arc::new(Mailer::new(
                url.expose_str(),
                &config.mail_from,
                &config.public_url,
            )?)),
            None => None,
        };
        let policy = SessionPolicy {
            refresh_ttl: config.refresh_ttl,
            max_age: config.session_max_age,
            reuse_grace: config.refresh_reuse_grace,
            limit: config.session_limit,
            require_fingerprint: config.require_fingerprint,
            require_dpop: config.dpop == DpopMode::Required,
        };
        let sessions = Arc::new(Sessions::new(
            store.clone(),
            tokens.clone(),
            passwords.clone(),
            policy,
            config.access_ttl,
            config.store.options.timeout,
            audit.clone(),
        ));
        let accounts = Arc::new(Accounts::new(
            store.clone(),
            passwords,
            sessions.clone(),
            audit,
            mailer,
            config.signup_open,
        ));
        // A restarted instance must refuse what was revoked before it started.
        sessions
            .catch_up_revocations()
            .await
            .map_err(StartError::Revocations)?;
        let login_limiter = config
            .login_rate
            .map(|rate| Arc::new(LoginLimiter::new(rate, store.clone())));
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        let state = AppState::new(Shared {
            config: Arc::new(config),
            store,
            tokens,
            sessions,
            accounts,
            login_limiter,
            metrics: metrics_handle(),
            web,
        });
        Ok(Application {
            listener,
            state,
            tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.state.config.addr)
    }

    /// `https://` and the address when serving TLS, else `http://` and the address.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr())
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.state.store.clone()
    }

    /// Serves until `shutdown` completes, lets in-flight requests finish, then closes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            listener,
            state,
            tls,
        } = self;
        let acceptor = tls.as_ref().map(Certificates::acceptor);
        let renewals = tls.map(|certificates| tokio::spawn(certificates.watch()));
        let maintenance = tokio::spawn(maintain(state.clone()));
        let follower = tokio::spawn(follow_revocations(state.clone()));
        let upkeep = tokio::spawn(metrics_upkeep(
            state.metrics.clone(),
            METRICS_UPKEEP_INTERVAL,
        ));
        let store = state.store.clone();
        let timeout = state.config.request_timeout;
        let audit = state.accounts.audit().clone();
        serve(listener, http::router(state), acceptor, timeout, shutdown).await;
        if let Some(renewals) = renewals {
            renewals.abort();
        }
        // Events of the last requests reach the store before it closes.
        if tokio::time::timeout(timeout, audit.flush()).await.is_err() {
            tracing::warn!("audit events still queued at shutdown; not all were written");
        }
        maintenance.abort();
        follower.abort();
        // Gone before the store closes: it may hold the store's listener.
        let _ = follower.await;
        upkeep.abort();
        store.close().await;
        Ok(())
    }
}

/// Browsers that reached us over HTTPS keep to it for two years.
const STRICT_TRANSPORT_SECURITY: HeaderValue = HeaderValue::from_static("max-age=63072000");

/// Serves until `shutdown`, then lets open requests finish (for at most `timeout`): HTTP/1.1,
/// or over TLS HTTP/2 or HTTP/1.1 as the client's ALPN chose. A connection that does not finish
/// its TLS handshake within `timeout`, does not send a request's headers within it (HTTP/1.1),
/// or sends nothing for that long (HTTP/2) is closed: slow and idle clients hold nothing.
async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(http::HEADER_LIMIT * 4);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    // Above the 431 limit, so that the middleware answers with a problem rather than hyper
    // with a reset stream.
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(http::HEADER_LIMIT as u32 * 2);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = &error as &dyn Error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            });
        let watcher = graceful.watcher();
        let Some(acceptor) = &tls else {
            let connection =
                http1.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
            tokio::spawn(log_end(watcher.watch(connection)));
            continue;
        };
        let app = app.map_response(|mut response: axum::response::Response| {
            response
                .headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, STRICT_TRANSPORT_SECURITY);
            response
        });
        let (acceptor, http1, http2) = (acceptor.clone(), http1.clone(), http2.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(error = &error as &dyn Error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake not finished in time");
                    return;
                }
            };
            let service = TowerToHyperService::new(app);
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                // HTTP/2 reads all the time; reading nothing for `timeout` means idle.
                let mut stream = TimeoutStream::new(stream);
                stream.set_read_timeout(Some(timeout));
                let io = TokioIo::new(Box::pin(stream));
                log_end(watcher.watch(http2.serve_connection(io, service))).await;
            } else {
                let io = TokioIo::new(stream);
                log_end(watcher.watch(http1.serve_connection(io, service))).await;
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still open after {timeout:?}; stopping anyway");
    }
}

/// Runs a connection to its end; how it ended is for debugging only.
async fn log_end(connection: impl Future<Output = Result<(), hyper::Error>>) {
    if let Err(error) = connection.await {
        tracing::debug!(
            error = &error as &dyn Error,
            "connection ended with an error"
        );
    }
}

/// Sweeps dead sessions, expired password resets and old audit events, reloads keys rotated elsewhere, forgets idle rate-limit entries and
/// keeps the live-sessions gauge current, so that a scrape of `/metrics` never waits for the
/// database.
async fn maintain(state: AppState) {
    let mut interval = tokio::time::interval(state.config.sweep_interval);
    loop {
        interval.tick().await;
        let now = OffsetDateTime::now_utc();
        match state.sessions.sweep(now).await {
            Ok(0) => {}
            Ok(swept) => tracing::info!(swept, "dead sessions swept"),
            Err(error) => tracing::warn!(error = &error as &dyn Error, "session sweep failed"),
        }
        if let Err(error) = state.tokens.reload().await {
            tracing::warn!(error = &error as &dyn Error, "key reload failed");
        }
        if let Err(error) = state.store.delete_expired_password_resets(now).await {
            tracing::warn!(error = &error as &dyn Error, "password reset sweep failed");
        }
        if state.store.is_shared() {
            let expired = state
                .store
                .delete_expired_dpop_replays(now.unix_timestamp());
            if let Err(error) = expired.await {
                tracing::warn!(error = &error as &dyn Error, "DPoP replay sweep failed");
            }
        }
        if let Some(kept) = state.config.audit_retention {
            match state.store.delete_audit_before(now - kept).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "audit events past their retention deleted"),
                Err(error) => tracing::warn!(error = &error as &dyn Error, "audit sweep failed"),
            }
        }
        if let Some(limiter) = &state.login_limiter {
            if let Err(error) = limiter.forget_idle().await {
                tracing::warn!(error = &error as &dyn Error, "rate-limit sweep failed");
            }
        }
        match state.store.count_live_sessions(now).await {
            Ok(live) => metrics::gauge!("tollgate_live_sessions").set(live as f64),
            Err(error) => tracing::warn!(error = &error as &dyn Error, "live session count failed"),
        }
    }
}

/// Reads revocations made by other instances and by the command line as the store signals
/// them (PostgreSQL), or every `revocation_poll` at the latest.
async fn follow_revocations(state: AppState) {
    loop {
        state
            .store
            .revocations_changed(state.config.revocation_poll)
            .await;
        if let Err(error) = state.sessions.catch_up_revocations().await {
            tracing::warn!(
                error = &error as &dyn Error,
                "revocations not read; retrying"
            );
        }
        if let Some(staleness) = state.sessions.revocations_staleness() {
            metrics::gauge!("tollgate_revocations_staleness_seconds").set(staleness.as_secs_f64());
        }
    }
}

/// Drains the recorder's histogram samples into their buckets. Without it every observation
/// stays in memory until a scrape: a server nobody scrapes would grow with every request.
pub async fn metrics_upkeep(handle: PrometheusHandle, every: Duration) {
    let mut interval = tokio::time::interval(every);
    loop {
        interval.tick().await;
        handle.run_upkeep();
    }
}

/// How often the metrics recorder is drained: often enough that what it holds stays small.
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// The process-wide Prometheus recorder (the `metrics` facade has one global recorder).
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            );
            match builder {
                Ok(builder) => builder.install_recorder(),
                Err(error) => Err(error),
            }
            .unwrap_or_else(|error| {
                tracing::warn!(
                    error = &error as &dyn Error,
                    "metrics recorder not installed"
                );
                PrometheusBuilder::new().build_recorder().handle()
            })
        })
        .clone()
}
