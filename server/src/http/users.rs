//! Accounts from the user's side: sign-up, password change, password reset, and the public
//! settings that tell a client which of them this server offers.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::account::caller;
use super::auth::{checked_fingerprint, rate_limit, rate_limited, signed_in, LoginResponse};
use super::error::{ApiError, Problem};
use super::extract::{origin_allowed, ApiJson, AuthUser, ClientIp, DpopProof};
use super::AppState;
use crate::audit::{Client, Event};
use crate::sessions::Device;
use crate::users::policy::MAX_EMAIL_BYTES;
use crate::users::NewUser;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/settings", get(settings))
        .route("/api/register", post(register))
        .route("/api/password", post(change_password))
        .route("/api/password-reset", post(request_password_reset))
        .route("/api/password-reset/confirm", post(confirm_password_reset))
}

/// What this server offers, for clients to show or hide their pages.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicSettings {
    /// `POST /api/register` is open.
    signup: bool,
    /// Password reset mails can be sent.
    password_reset: bool,
}

/// Which account features this server offers.
#[utoipa::path(get, path = "/api/settings", tag = "accounts",
    responses((status = 200, body = PublicSettings)))]
pub async fn settings(State(state): State<AppState>) -> Json<PublicSettings> {
    Json(PublicSettings {
        signup: state.accounts.signup_open(),
        password_reset: state.accounts.password_reset_available(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    username: String,
    password: String,
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    gender: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    city: String,
    fingerprint: Option<String>,
    /// Send the refresh token as the `tollgate_refresh` cookie instead of in the body.
    #[serde(default, rename = "useCookie")]
    use_cookie: bool,
}

/// Create an account and sign in with it (when `TOLLGATE_SIGNUP=open`).
#[utoipa::path(post, path = "/api/register", tag = "accounts", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Created and signed in", body = LoginResponse),
        (status = 400, description = "Weak password, invalid field or malformed body", body = Problem),
        (status = 403, description = "Sign-up is closed", body = Problem),
        (status = 409, description = "The username is taken", body = Problem),
        (status = 429, description = "Too many attempts; see Retry-After", body = Problem),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    client: Client,
    headers: HeaderMap,
    proof: DpopProof,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    if !origin_allowed(&headers, &state) {
        return Err(ApiError::CrossSite);
    }
    if !state.accounts.signup_open() {
        return Err(ApiError::Forbidden(
            "Sign-up is closed on this server.".into(),
        ));
    }
    if request.email.trim().is_empty() {
        return Err(ApiError::BadRequest("An email address is required.".into()));
    }
    let fingerprint = checked_fingerprint(request.fingerprint)?;
    proof.nonce_challenge(&state)?;
    let refused = Event::new("register", "rate_limited");
    rate_limit(
        &state,
        ip,
        &request.username,
        fingerprint.as_deref(),
        (refused, &client),
    )
    .await?;
    let new = NewUser {
        username: request.username,
        email: request.email,
        first_name: request.first_name,
        last_name: request.last_name,
        gender: request.gender,
        phone: request.phone,
        city: request.city,
        roles: Vec::new(),
    };
    let dpop_jkt = proof.bind(&state).await?;
    let device = Device {
        fingerprint,
        client,
        dpop_jkt,
    };
    let now = OffsetDateTime::now_utc();
    let (user, pair) = state
        .accounts
        .register(new, request.password, device, now)
        .await?;
    Ok(signed_in(
        &state,
        StatusCode::CREATED,
        user,
        pair,
        request.use_cookie,
        now,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Change the caller's password; every other session of the caller is signed out.
#[utoipa::path(post, path = "/api/password", tag = "accounts", security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "Wrong current password, or a weak new one", body = Problem),
        (status = 401, body = Problem),
        (status = 429, description = "Too many attempts; see Retry-After", body = Problem),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    ClientIp(ip): ClientIp,
    client: Client,
    ApiJson(request): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    // Guessing the current password with a stolen access token costs sign-in attempts.
    let refused = caller(Event::new("password_change", "rate_limited"), &claims);
    rate_limit(&state, ip, &claims.user.username, None, (refused, &client)).await?;
    state
        .accounts
        .change_password(
            claims.sub,
            claims.sid,
            request.current_password,
            request.new_password,
            &client,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetRequest {
    email: String,
}

/// Mail a password reset link to the accounts with this address, if there are any. The
/// answer is the same either way.
#[utoipa::path(post, path = "/api/password-reset", tag = "accounts", request_body = ResetRequest,
    responses(
        (status = 202, description = "Accepted (whether or not the address is known)"),
        (status = 400, description = "Malformed body", body = Problem),
        (status = 429, description = "Too many requests; see Retry-After", body = Problem),
    ))]
pub async fn request_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    client: Client,
    ApiJson(request): ApiJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    let email = request.email.trim().to_owned();
    if email.is_empty() || email.len() > MAX_EMAIL_BYTES {
        return Err(ApiError::BadRequest(
            "The email address must have 1 to 254 bytes.".into(),
        ));
    }
    // Per client and per address: nobody can flood a mailbox with links.
    reset_rate_limit(&state, ip, Some(&email), &client).await?;
    state.accounts.request_password_reset(email, client);
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetConfirmation {
    token: String,
    new_password: String,
}

/// Set a new password with the token from a reset mail; every session is signed out.
#[utoipa::path(post, path = "/api/password-reset/confirm", tag = "accounts",
    request_body = ResetConfirmation,
    responses(
        (status = 204, description = "Password set"),
        (status = 400, description = "Unknown, used or expired token, or a weak password", body = Problem),
        (status = 429, description = "Too many attempts; see Retry-After", body = Problem),
    ))]
pub async fn confirm_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    client: Client,
    ApiJson(request): ApiJson<ResetConfirmation>,
) -> Result<StatusCode, ApiError> {
    reset_rate_limit(&state, ip, None, &client).await?;
    state
        .accounts
        .confirm_password_reset(&request.token, request.new_password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The sign-in budget, spent on resets: per client network, and per address when one is given.
async fn reset_rate_limit(
    state: &AppState,
    ip: IpAddr,
    email: Option<&str>,
    client: &Client,
) -> Result<(), ApiError> {
    let Some(limiter) = &state.login_limiter else {
        return Ok(());
    };
    let wait = match email {
        Some(email) => {
            let key = format!("password-reset:{}", email.to_lowercase());
            limiter.check(ip, &key, None).await?
        }
        None => limiter.check_network(ip).await?,
    };
    match wait {
        None => Ok(()),
        Some(wait) => {
            let event = Event::new("password_reset_request", "rate_limited");
            Err(rate_limited(state, wait, event, client).await)
        }
    }
}
