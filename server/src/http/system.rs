//! Health, metrics, public keys and the API description.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ApiError, Problem};
use super::{account, admin, auth, revocation, users, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/openapi.json", get(openapi))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tollgate", description = "JWT authorization: access tokens and rotating refresh tokens."),
    paths(
        auth::login, auth::refresh, auth::logout,
        account::current_user, account::job_list, account::list_sessions,
        account::revoke_session, account::revoke_all_sessions,
        revocation::revocations, revocation::revoke, revocation::introspect,
        users::settings, users::register, users::change_password,
        users::request_password_reset, users::confirm_password_reset,
        admin::list_users, admin::create_user, admin::update_user, admin::delete_user,
        admin::end_sessions, admin::audit_log,
        healthz, jwks,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        // Resource servers introspect with a shared secret, as a bearer token.
        components.add_security_scheme(
            "introspection",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// 200 once the store answers, 503 otherwise.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200), (status = 503, body = Problem)))]
pub async fn healthz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Ok(Err(error)) => ApiError::StoreDown(error.into()).into_response(),
        Err(elapsed) => ApiError::StoreDown(elapsed.into()).into_response(),
    }
}

/// Prometheus text; gauges are kept current by the background task, never by a query here.
async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// How long resource servers may keep the JWKS: a rotated-in key is published a minute before
/// it signs by default, and verifiers fetch again at once on a key id they do not know.
const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// The public keys that verify access tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "system", responses((status = 200)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(CACHE_CONTROL, JWKS_CACHE_CONTROL)],
        Json(state.tokens.jwks()),
    )
        .into_response()
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
