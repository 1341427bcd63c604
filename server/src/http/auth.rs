//! Sign-in, refresh and sign-out, with the refresh token in the body or in a cookie.

use axum::extract::State;
use std::net::IpAddr;
use std::time::Duration;

use axum::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::{insert_nonce, ApiError, Problem};
use super::extract::{is_json, origin_allowed, ApiJson, ClientIp, DpopProof, OptionalJson};
use super::views::UserView;
use super::AppState;
use crate::audit::{Client, Event};
use crate::sessions::{AuthError, DenyReason, Device, RefreshKind, TokenPair};
use crate::store::User;
use crate::users::UserError;

pub const REFRESH_COOKIE: &str = "tollgate_refresh";
const MAX_USERNAME_BYTES: usize = 256;
const MAX_FINGERPRINT_BYTES: usize = 512;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/refresh-token", post(refresh))
        .route("/api/logout", post(logout))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    username: String,
    password: String,
    fingerprint: Option<String>,
    /// Send the refresh token as the `tollgate_refresh` cookie instead of in the body.
    #[serde(default)]
    use_cookie: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    user: UserView,
    #[serde(flatten)]
    tokens: TokenResponse,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    access_token: String,
    /// Absent when the refresh token travels in the cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    expires_in: u64,
    token_type: &'static str,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    refresh_token: Option<String>,
    fingerprint: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogoutRequest {
    refresh_token: Option<String>,
}

/// Sign in with a username and password.
#[utoipa::path(post, path = "/api/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = LoginResponse),
        (status = 400, description = "Wrong credentials or malformed body", body = Problem),
        (status = 429, description = "Too many attempts; see Retry-After", body = Problem),
        (status = 503, description = "Too many sign-ins at once (with Retry-After), or the store is unavailable", body = Problem),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    client: Client,
    headers: HeaderMap,
    proof: DpopProof,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    if !origin_allowed(&headers, &state) {
        return Err(ApiError::CrossSite);
    }
    if request.username.is_empty() || request.username.len() > MAX_USERNAME_BYTES {
        return Err(ApiError::BadRequest(
            "The username must have 1 to 256 bytes.".into(),
        ));
    }
    let fingerprint = checked_fingerprint(request.fingerprint)?;
    proof.nonce_challenge(&state)?;
    // The limit is checked before any lookup: the name is not known to be a user's, and is
    // not recorded (it may be a password typed in the wrong field).
    let refused = Event::new("login", "rate_limited");
    if let Err(limited) = rate_limit(
        &state,
        ip,
        &request.username,
        fingerprint.as_deref(),
        (refused, &client),
    )
    .await
    {
        metrics::counter!("tollgate_logins_total", "outcome" => "rate_limited").increment(1);
        return Err(limited);
    }
    let dpop_jkt = proof.bind(&state).await?;
    let device = Device {
        fingerprint,
        client,
        dpop_jkt,
    };
    let now = OffsetDateTime::now_utc();
    let result = state
        .sessions
        .login(&request.username, request.password, device, now)
        .await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(AuthError::InvalidCredentials) => "failed",
        Err(AuthError::User(UserError::Busy)) => "busy",
        Err(_) => "error",
    };
    metrics::counter!("tollgate_logins_total", "outcome" => outcome).increment(1);
    let (user, pair) = result?;
    Ok(signed_in(
        &state,
        StatusCode::OK,
        user,
        pair,
        request.use_cookie,
        now,
    ))
}

/// The answer of a sign-in (login or registration): the user and the tokens.
pub fn signed_in(
    state: &AppState,
    status: StatusCode,
    user: User,
    pair: TokenPair,
    use_cookie: bool,
    now: OffsetDateTime,
) -> Response {
    let (tokens, cookie) = token_response(pair, use_cookie, now);
    let body = Json(LoginResponse {
        user: user.into(),
        tokens,
    });
    with_tokens(state, (status, body), cookie, now)
}

/// A fingerprint as sent: empty counts as none; longer than 512 bytes is refused.
pub fn checked_fingerprint(fingerprint: Option<String>) -> Result<Option<String>, ApiError> {
    let fingerprint = fingerprint.filter(|fingerprint| !fingerprint.is_empty());
    if fingerprint
        .as_ref()
        .is_some_and(|f| f.len() > MAX_FINGERPRINT_BYTES)
    {
        return Err(ApiError::BadRequest(
            "The fingerprint is longer than 512 bytes.".into(),
        ));
    }
    Ok(fingerprint)
}

/// The sign-in budget of this client and username (shared by login, registration and
/// password changes); a refusal is audited as `refused`, from `client`.
pub async fn rate_limit(
    state: &AppState,
    ip: IpAddr,
    username: &str,
    fingerprint: Option<&str>,
    (refused, client): (Event, &Client),
) -> Result<(), ApiError> {
    let Some(limiter) = &state.login_limiter else {
        return Ok(());
    };
    let Some(wait) = limiter.check(ip, username, fingerprint).await? else {
        return Ok(());
    };
    Err(rate_limited(state, wait, refused, client).await)
}

/// 429 with `Retry-After`, audited as `event`.
pub async fn rate_limited(
    state: &AppState,
    wait: Duration,
    event: Event,
    client: &Client,
) -> ApiError {
    state.accounts.audit().record(event, client).await;
    ApiError::RateLimited {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

/// Exchange a refresh token (body or cookie) for a new pair; the old token stops working.
#[utoipa::path(post, path = "/api/refresh-token", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenResponse),
        (status = 403, description = "Refresh refused; sign in again", body = Problem),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    proof: DpopProof,
    body: Result<OptionalJson<RefreshRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let failed =
        || metrics::counter!("tollgate_refreshes_total", "outcome" => "failed").increment(1);
    let request = match body {
        Ok(OptionalJson(request)) => request.unwrap_or_default(),
        Err(ApiError::BadRequest(_)) => {
            failed();
            return Err(ApiError::RefreshRefused);
        }
        Err(other) => return Err(other),
    };
    let (token, from_cookie) = match request.refresh_token {
        Some(token) => (token, false),
        // Two cookies of our name mean one was planted (cookie tossing from a sibling
        // domain): which is ours cannot be told, so neither is used.
        None => match refresh_cookies_of(&headers, &state).as_slice() {
            [token] => (token.to_string(), true),
            _ => {
                failed();
                return Err(ApiError::RefreshRefused);
            }
        },
    };
    let proof = proof.request();
    let now = OffsetDateTime::now_utc();
    let result = state
        .sessions
        .refresh(
            &token,
            request.fingerprint.as_deref(),
            proof.as_ref(),
            &client,
            now,
        )
        .await;
    let outcome = match &result {
        Ok((_, RefreshKind::Rotated)) => "ok",
        Ok((_, RefreshKind::Grace)) => "grace",
        Err(AuthError::RefreshDenied(DenyReason::Reused)) => "reused",
        Err(_) => "failed",
    };
    metrics::counter!("tollgate_refreshes_total", "outcome" => outcome).increment(1);
    match result {
        Ok((pair, _)) => {
            let (tokens, cookie) = token_response(pair, from_cookie, now);
            Ok(with_tokens(&state, Json(tokens), cookie, now))
        }
        Err(error) => Ok(refresh_failed(error.into(), from_cookie)),
    }
}

/// Only a refused refresh ends the cookie; an outage (503), a timeout or a nonce challenge
/// keeps it, so the browser can refresh again.
fn refresh_failed(error: ApiError, from_cookie: bool) -> Response {
    let refused = matches!(error, ApiError::RefreshRefused);
    let mut response = error.into_response();
    if from_cookie && refused {
        response.headers_mut().insert(SET_COOKIE, clear_cookie());
    }
    response
}

/// Sign out this device: revokes the session of the refresh token (body or cookie).
#[utoipa::path(post, path = "/api/logout", tag = "auth", request_body = LogoutRequest,
    responses(
        (status = 204, description = "Signed out (also for an unknown token)"),
        (status = 400, description = "Malformed body", body = Problem),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    OptionalJson(request): OptionalJson<LogoutRequest>,
) -> Result<Response, ApiError> {
    let cookies = refresh_cookies_of(&headers, &state);
    let body_token = request.and_then(|request| request.refresh_token);
    let tokens: Vec<&str> = match &body_token {
        Some(token) => vec![token.as_str()],
        // Signing out with a planted cookie beside ours ends both sessions: each is the
        // holder's to end, and ours must not survive a sign-out.
        None => cookies.clone(),
    };
    for token in tokens {
        if let Some((sid, user)) = state.sessions.logout(token).await? {
            let event = Event {
                user_id: Some(user),
                ..Event::new("logout", "ok").session(sid)
            };
            state.accounts.audit().record(event, &client).await;
        }
    }
    // Only a request that could use the cookie may clear it.
    let mut response = StatusCode::NO_CONTENT.into_response();
    if !cookies.is_empty() {
        response.headers_mut().insert(SET_COOKIE, clear_cookie());
    }
    Ok(response)
}

fn token_response(
    pair: TokenPair,
    use_cookie: bool,
    now: OffsetDateTime,
) -> (TokenResponse, Option<HeaderValue>) {
    let cookie = use_cookie.then(|| {
        let max_age = (pair.refresh_expires_at - now).whole_seconds().max(0);
        refresh_cookie(&pair.refresh_token, max_age)
    });
    let response = TokenResponse {
        access_token: pair.access_token,
        refresh_token: (!use_cookie).then_some(pair.refresh_token),
        expires_in: pair.expires_in,
        token_type: if pair.bound { "DPoP" } else { "Bearer" },
    };
    (response, cookie.flatten())
}

/// Token-bearing responses must never be cached. Where nonces are asked for, they carry the
/// nonce the client's next proof needs.
fn with_tokens(
    state: &AppState,
    body: impl IntoResponse,
    cookie: Option<HeaderValue>,
    now: OffsetDateTime,
) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cookie) = cookie {
        headers.insert(SET_COOKIE, cookie);
    }
    let dpop = state.tokens.verifier().dpop();
    if let Some(nonce) = dpop.and_then(|dpop| dpop.nonce(now.unix_timestamp())) {
        insert_nonce(headers, &nonce);
    }
    response
}

fn refresh_cookie(token: &str, max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{REFRESH_COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age={max_age}"
    ))
    .ok()
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "tollgate_refresh=; HttpOnly; Secure; SameSite=Strict; Path=/api; Max-Age=0",
    )
}

/// The refresh cookies, honoured only on a JSON request from our own origin or a listed one:
/// a cross-site form or script cannot make the browser spend them (CSRF).
fn refresh_cookies_of<'a>(headers: &'a HeaderMap, state: &AppState) -> Vec<&'a str> {
    if !(is_json(headers) && origin_allowed(headers, state)) {
        return Vec::new();
    }
    cookies(headers, REFRESH_COOKIE).collect()
}

/// Every non-empty value of cookie `name` in the request's `Cookie` headers.
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value)
}
