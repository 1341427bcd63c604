//! Every failure becomes RFC 9457 problem+json here, and only here: handlers, extractors and
//! middleware return an `ApiError`. Internal detail is logged once, with its whole chain of
//! causes, and never sent.

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::sessions::AuthError;
use crate::store::StoreError;
use crate::tokens::TokenError;
use crate::users::{AccountError, UserError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unauthorized")]
    Unauthorized { token_sent: bool },
    /// A DPoP-bound token without a good proof, or a token sent with the `DPoP` scheme that
    /// was refused: 401 with a `DPoP` challenge.
    #[error("DPoP refused: {0:?}")]
    DpopUnauthorized(DpopChallenge),
    /// A sign-in's DPoP proof that was refused: 400.
    #[error("DPoP proof refused")]
    DpopProofRefused,
    /// A DPoP proof without the current server nonce, at a sign-in or a refresh: 400 with
    /// the nonce to sign again with (RFC 9449 §8).
    #[error("a DPoP nonce is required")]
    DpopNonce(String),
    #[error("refresh refused")]
    RefreshRefused,
    #[error("cross-site request refused")]
    CrossSite,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("too many sign-in attempts")]
    RateLimited { retry_after_secs: u64 },
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("request timed out")]
    Timeout,
    #[error("service unavailable")]
    Unavailable(#[source] Cause),
    /// The health check's answer while the store does not answer.
    #[error("the store does not answer")]
    StoreDown(#[source] Cause),
    #[error("too busy to hash another password")]
    Busy { retry_after_secs: u64 },
    #[error("internal error")]
    Internal(#[source] Cause),
}

/// The `error` of a `WWW-Authenticate: DPoP` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpopChallenge {
    InvalidToken,
    InvalidProof,
    UseNonce(String),
}

/// What went wrong underneath, kept whole for the log.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The RFC 9449 error code of a DPoP refusal, as `WWW-Authenticate` gives it:
    /// `invalid_token`, `invalid_dpop_proof` or `use_dpop_nonce`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

impl ApiError {
    pub fn internal(cause: impl Into<Cause>) -> ApiError {
        ApiError::Internal(cause.into())
    }

    pub fn unavailable(cause: impl Into<Cause>) -> ApiError {
        ApiError::Unavailable(cause.into())
    }

    /// The RFC 9449 error code of a DPoP refusal.
    fn dpop_error(&self) -> Option<&'static str> {
        match self {
            ApiError::DpopUnauthorized(DpopChallenge::InvalidToken) => Some("invalid_token"),
            ApiError::DpopUnauthorized(DpopChallenge::InvalidProof)
            | ApiError::DpopProofRefused => Some("invalid_dpop_proof"),
            ApiError::DpopUnauthorized(DpopChallenge::UseNonce(_)) | ApiError::DpopNonce(_) => {
                Some("use_dpop_nonce")
            }
            _ => None,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidCredentials => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Unauthorized { .. } | ApiError::DpopUnauthorized(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::DpopProofRefused | ApiError::DpopNonce(_) => StatusCode::BAD_REQUEST,
            ApiError::RefreshRefused | ApiError::CrossSite | ApiError::Forbidden(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) | ApiError::StoreDown(_) | ApiError::Busy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the client is told: never internal detail.
    fn detail(&self) -> String {
        match self {
            ApiError::BadRequest(detail)
            | ApiError::UnsupportedMediaType(detail)
            | ApiError::Forbidden(detail)
            | ApiError::Conflict(detail) => detail.clone(),
            ApiError::InvalidCredentials => "Wrong username or password.".into(),
            ApiError::PayloadTooLarge => "The request body is too large.".into(),
            ApiError::HeadersTooLarge => "The request headers are too large.".into(),
            ApiError::Unauthorized { token_sent: true } => {
                "The access token is invalid or has expired.".into()
            }
            ApiError::Unauthorized { token_sent: false } => "An access token is required.".into(),
            ApiError::DpopUnauthorized(DpopChallenge::InvalidToken) => {
                "The access token is invalid, has expired, or needs its DPoP proof.".into()
            }
            ApiError::DpopUnauthorized(DpopChallenge::InvalidProof)
            | ApiError::DpopProofRefused => "The DPoP proof is missing or invalid.".into(),
            ApiError::DpopUnauthorized(DpopChallenge::UseNonce(_)) | ApiError::DpopNonce(_) => {
                "Sign the DPoP proof again with the nonce in DPoP-Nonce.".into()
            }
            ApiError::RefreshRefused => {
                "The refresh token is invalid, expired or revoked. Please sign in again.".into()
            }
            ApiError::CrossSite => "Requests from other sites are refused.".into(),
            ApiError::NotFound => "Nothing here.".into(),
            ApiError::RateLimited { retry_after_secs } => {
                format!("Too many sign-in attempts. Try again in {retry_after_secs} s.")
            }
            ApiError::Timeout => "The request took too long.".into(),
            ApiError::Unavailable(_) => "The service is temporarily unavailable.".into(),
            ApiError::StoreDown(_) => "The store does not answer.".into(),
            ApiError::Busy { retry_after_secs } => {
                format!("Too many sign-ins at once. Try again in {retry_after_secs} s.")
            }
            ApiError::Internal(_) => "Something went wrong on our side.".into(),
        }
    }
}

fn problem(status: StatusCode, detail: String, error: Option<&'static str>) -> Response {
    let body = Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        detail,
        error,
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = &**cause as &dyn std::error::Error, "request failed");
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(
                    error = &**cause as &dyn std::error::Error,
                    "service unavailable"
                );
            }
            // Probes ask every few seconds; requests that fail say so at warn.
            ApiError::StoreDown(cause) => {
                tracing::debug!(
                    error = &**cause as &dyn std::error::Error,
                    "health check failed"
                );
            }
            _ => {}
        }
        let dpop_error = self.dpop_error();
        let mut response = problem(self.status(), self.detail(), dpop_error);
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized { token_sent } => {
                let challenge = if token_sent {
                    r#"Bearer error="invalid_token""#
                } else {
                    "Bearer"
                };
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            ApiError::RateLimited { retry_after_secs } | ApiError::Busy { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            ApiError::DpopUnauthorized(DpopChallenge::UseNonce(nonce))
            | ApiError::DpopNonce(nonce) => {
                insert_nonce(headers, &nonce);
            }
            _ => {}
        }
        // A sign-in's refusal too: no token was sent, but this tells the client why (RFC 9449
        // §5).
        if let Some(error) = dpop_error {
            if let Ok(challenge) = HeaderValue::from_str(&format!(r#"DPoP error="{error}""#)) {
                headers.insert(header::WWW_AUTHENTICATE, challenge);
            }
        }
        response
    }
}

/// `DPoP-Nonce`: the nonce the next proof must carry.
pub fn insert_nonce(headers: &mut header::HeaderMap, nonce: &str) {
    if let Ok(nonce) = HeaderValue::from_str(nonce) {
        headers.insert(tollgate_verify::axum::DPOP_NONCE.clone(), nonce);
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => ApiError::unavailable(error),
            other => ApiError::internal(other),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Store(error) => error.into(),
            TokenError::KeysUnavailable => ApiError::unavailable(error),
            other => ApiError::internal(other),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::Store(error) => error.into(),
            UserError::Busy => ApiError::Busy {
                retry_after_secs: 1,
            },
            UserError::UsernameTaken(_) => {
                ApiError::Conflict("This username is taken; choose another.".into())
            }
            UserError::Invalid(reason) | UserError::WeakPassword(reason) => {
                ApiError::BadRequest(reason.into())
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidCredentials => ApiError::InvalidCredentials,
            AuthError::FingerprintRequired => {
                ApiError::BadRequest("A device fingerprint is required.".into())
            }
            AuthError::DpopRequired => {
                ApiError::BadRequest("A DPoP proof is required to sign in.".into())
            }
            AuthError::DpopNonce(nonce) => ApiError::DpopNonce(nonce),
            AuthError::DpopUnavailable(cause) => ApiError::Unavailable(cause),
            AuthError::RefreshDenied(_) => ApiError::RefreshRefused,
            AuthError::Store(error) => error.into(),
            AuthError::User(error) => error.into(),
            AuthError::Token(error) => error.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::SignupClosed => {
                ApiError::Forbidden("Sign-up is closed on this server.".into())
            }
            AccountError::WrongPassword => {
                ApiError::BadRequest("The current password is wrong.".into())
            }
            AccountError::InvalidResetToken => ApiError::BadRequest(
                "This reset link is unknown, already used or expired. Ask for a new one.".into(),
            ),
            AccountError::NotFound => ApiError::NotFound,
            AccountError::SelfLockout(reason) => ApiError::Conflict(reason.into()),
            AccountError::User(error) => error.into(),
            AccountError::Auth(error) => error.into(),
            AccountError::Store(error) => error.into(),
            AccountError::Random => ApiError::internal(error),
        }
    }
}

impl From<FormRejection> for ApiError {
    fn from(rejection: FormRejection) -> Self {
        match rejection {
            FormRejection::InvalidFormContentType(_) => ApiError::UnsupportedMediaType(
                "Expected a body with Content-Type: application/x-www-form-urlencoded.".into(),
            ),
            FormRejection::FailedToDeserializeFormBody(error) => ApiError::BadRequest(format!(
                "The form does not have the expected fields: {}",
                error.body_text()
            )),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            _ => ApiError::BadRequest("The body could not be read.".into()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "Expected a body with Content-Type: application/json.".into(),
            ),
            JsonRejection::BytesRejection(_) => ApiError::PayloadTooLarge,
            JsonRejection::JsonDataError(error) => ApiError::BadRequest(format!(
                "The JSON body does not have the expected fields: {}",
                error.body_text()
            )),
            JsonRejection::JsonSyntaxError(_) => {
                ApiError::BadRequest("The body is not valid JSON.".into())
            }
            _ => ApiError::BadRequest("The body could not be read.".into()),
        }
    }
}
