//! Request extractors: JSON bodies that fail as problem+json, and the bearer-token identity.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;
use crate::tokens::AccessClaims;

/// `axum::Json` whose rejections are problem+json (400, 413 or 415).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// A JSON body that may be absent altogether: an empty body is `None`.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = is_json(request.headers());
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest("The body could not be read.".into())
                }
            })?;
        if bytes.is_empty() {
            return Ok(OptionalJson(None));
        }
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "Expected a body with Content-Type: application/json.".into(),
            ));
        }
        serde_json::from_slice(&bytes)
            .map(|value| OptionalJson(Some(value)))
            .map_err(|_| ApiError::BadRequest("The body is not the expected JSON.".into()))
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// The caller, known only from a verified access token (RFC 6750 bearer).
pub struct AuthUser(pub AccessClaims);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)?;
        state
            .tokens
            .verify_access(token)
            .map(AuthUser)
            .map_err(|error| {
                tracing::debug!(%error, "access token refused");
                ApiError::Unauthorized { token_sent: true }
            })
    }
}

/// The token of the one `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        // None at all, or several: only a single header is unambiguous.
        let several = headers.get_all(AUTHORIZATION).iter().count() > 1;
        return Err(ApiError::Unauthorized {
            token_sent: several,
        });
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized { token_sent: true })?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(ApiError::Unauthorized {
            token_sent: value.eq_ignore_ascii_case("bearer"),
        });
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized { token_sent: false });
    }
    let is_token68 = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    if is_token68 {
        Ok(token)
    } else {
        Err(ApiError::Unauthorized { token_sent: true })
    }
}
