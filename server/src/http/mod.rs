//! The HTTP face of Tollgate: routes, middleware and the single-page app.

mod account;
mod admin;
mod auth;
mod error;
mod extract;
mod revocation;
mod system;
mod users;
mod views;
mod web;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Router};
use metrics::{Counter, Histogram, Label};
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use tracing::Instrument;

pub use account::job_list_response;
pub use error::ApiError;
pub use web::WebClient;

use crate::config::Config;
use crate::sessions::{LoginLimiter, Sessions};
use crate::store::Store;
use crate::tokens::Tokens;
use crate::users::Accounts;

/// Bodies are small JSON documents; anything larger is refused with 413.
const BODY_LIMIT: usize = 16 * 1024;
/// All request headers together; larger ones get 431.
pub const HEADER_LIMIT: usize = 16 * 1024;

/// The client only loads its own scripts; Angular sets component styles inline.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// What every handler shares. Extractors clone the state for each request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub tokens: Arc<Tokens>,
    pub sessions: Arc<Sessions>,
    pub accounts: Arc<Accounts>,
    pub login_limiter: Option<Arc<LoginLimiter>>,
    pub metrics: PrometheusHandle,
    pub web: WebClient,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

pub fn router(state: AppState) -> Router {
    // No listed origin, no CORS headers at all: the app itself is same-origin.
    let cors = (!state.config.cors_origins.is_empty()).then(|| {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(state.config.cors_origins.clone()))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                tollgate_verify::axum::DPOP.clone(),
            ])
            // Clients honour `Retry-After` on a 429 (the Angular library waits, then replays
            // once), and sign their DPoP proofs again with the nonce of a challenge.
            // `Date` lets a client with a wrong clock date its proofs by ours.
            .expose_headers([
                header::DATE,
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
                tollgate_verify::axum::DPOP_NONCE.clone(),
            ])
            .max_age(Duration::from_secs(600))
    });
    // One layer over the routes rather than one per middleware: axum boxes, clones and
    // re-boxes every route for each `Router::layer` call, on every request.
    // Request and response events (`RUST_LOG=tower_http=debug`); without them the layer only
    // costs (two clock reads, a span and a body wrapper per request). Failures are logged by
    // `ApiError` either way.
    let request_tracing = tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG);
    let middleware = ServiceBuilder::new()
        .layer(middleware::from_fn(around_every_request))
        .option_layer(cors)
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            ApiError::Timeout
        }))
        .timeout(state.config.request_timeout)
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    let router = Router::new()
        .merge(auth::router())
        .merge(account::router())
        .merge(users::router())
        .merge(admin::router())
        .merge(revocation::router())
        .merge(system::router())
        .fallback(spa_or_not_found)
        .layer(middleware)
        .with_state(state);
    if request_tracing {
        // The path only: a query may hold a secret (the token of a password reset link).
        let span = |request: &Request| tracing::debug_span!("request", method = %request.method(), path = %request.uri().path());
        router.layer(TraceLayer::new_for_http().make_span_with(span))
    } else {
        router
    }
}

/// Client routes get the app's `index.html`; unknown API paths a 404 problem.
async fn spa_or_not_found(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path();
    let is_api = path == "/api" || path.starts_with("/api/");
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    if is_api || !is_read {
        return ApiError::NotFound.into_response();
    }
    state.web.serve(request).await
}

/// Every response gets these unless its handler set its own. One function rather than a
/// `SetResponseHeaderLayer` each: every layer is cloned and wrapped for every request.
static SECURITY_HEADERS: [(HeaderName, HeaderValue); 5] = [
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    ),
];

/// What every request goes through, in one layer (each `from_fn` layer clones and boxes the
/// services under it per request): the header size limit (431), the request metrics, and the
/// security headers. Outside CORS, so that preflight answers get the headers too.
async fn around_every_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let header_size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let id = request_id(request.headers());
    // Every line logged while the request is handled names it.
    let span = tracing::info_span!("request", request_id = id.to_str().unwrap_or_default());
    let mut response = if header_size > HEADER_LIMIT {
        ApiError::HeadersTooLarge.into_response()
    } else {
        next.run(request).instrument(span).await
    };
    let route = route.as_ref().map_or("fallback", MatchedPath::as_str);
    let (requests, duration) = REQUEST_METRICS.handles(method, route, response.status().as_u16());
    requests.increment(1);
    duration.record(started.elapsed().as_secs_f64());
    let headers = response.headers_mut();
    for (name, value) in &SECURITY_HEADERS {
        headers.entry(name).or_insert_with(|| value.clone());
    }
    headers.insert(REQUEST_ID, id);
    response
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's (or its proxy's) `X-Request-Id` when it is a plausible id: 1 to 128 letters,
/// digits, `-`, `_`, `.` or `:`, nothing that could forge a log line. Otherwise a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    let plausible = |id: &&HeaderValue| {
        let bytes = id.as_bytes();
        (1..=128).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    };
    if let Some(id) = headers.get(REQUEST_ID).filter(plausible) {
        return id.clone();
    }
    let mut generated = [0u8; 32];
    let generated = uuid::Uuid::new_v4().simple().encode_lower(&mut generated);
    HeaderValue::from_str(generated).unwrap_or(HeaderValue::from_static("unknown"))
}

/// `http_requests_total` and `http_request_duration_seconds` by method, route and status,
/// registered once each: building the labels and finding the series on every request cost
/// more than recording. Bounded: routes are the router's, methods and statuses few.
static REQUEST_METRICS: LazyLock<RequestMetrics> = LazyLock::new(RequestMetrics::default);

type RouteHandles = HashMap<(&'static str, u16), (Counter, Histogram)>;

#[derive(Default)]
struct RequestMetrics {
    by_route: RwLock<HashMap<String, RouteHandles>>,
}

impl RequestMetrics {
    fn handles(&self, method: &'static str, route: &str, status: u16) -> (Counter, Histogram) {
        let known = self
            .by_route
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(route)
            .and_then(|handles| handles.get(&(method, status)).cloned());
        known.unwrap_or_else(|| {
            let labels = [
                Label::from_static_parts("method", method),
                Label::new("route", route.to_owned()),
                Label::new("status", status.to_string()),
            ];
            let handles = (
                metrics::counter!("http_requests_total", labels.iter()),
                metrics::histogram!("http_request_duration_seconds", labels.iter()),
            );
            self.by_route
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .entry(route.to_owned())
                .or_default()
                .insert((method, status), handles.clone());
            handles
        })
    }
}

/// Methods outside HTTP's standard set share one label: a client inventing a method per
/// request must not grow the metrics without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}
