//! axum integration: the [`Authenticated`] extractor and the [`RequireAccessToken`] layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::extract::{FromRef, FromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, StatusCode};

use crate::check::Rejection;
use crate::verifier::{Verifier, VerifyError};
use crate::AccessClaims;

/// The caller, known from a verified access token of a session that was not revoked.
///
/// Extracted from the request: from the [`RequireAccessToken`] layer's verification when the
/// route has one, otherwise by verifying the `Authorization: Bearer` header with the
/// `Arc<Verifier>` the state provides (`FromRef`).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<AccessClaims>);

/// Why a request was not authenticated; answers as Tollgate does (RFC 6750, problem+json).
#[derive(Debug, thiserror::Error)]
pub enum AuthRejection {
    /// No bearer token: 401 with a bare `WWW-Authenticate: Bearer` challenge.
    #[error("no access token")]
    MissingToken,
    /// A token that was refused (why is for logs only): 401 `invalid_token`.
    #[error("access token refused: {0}")]
    InvalidToken(Rejection),
    /// Keys or revocations could not be read: 503, so that nobody is signed out over an
    /// outage.
    #[error(transparent)]
    Unavailable(VerifyError),
}

impl From<VerifyError> for AuthRejection {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::Rejected(rejection) => AuthRejection::InvalidToken(rejection),
            unavailable => AuthRejection::Unavailable(unavailable),
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let (status, detail, challenge) = match &self {
            AuthRejection::MissingToken => (
                StatusCode::UNAUTHORIZED,
                "An access token is required.",
                Some("Bearer"),
            ),
            AuthRejection::InvalidToken(_) => (
                StatusCode::UNAUTHORIZED,
                "The access token is invalid or has expired.",
                Some(r#"Bearer error="invalid_token""#),
            ),
            AuthRejection::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is temporarily unavailable.",
                None,
            ),
        };
        let body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match challenge {
            Some(challenge) => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            None => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
        }
        response
    }
}

/// The token of the one `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthRejection> {
    // "Invalid" rather than "missing" when something token-like was sent.
    let invalid = AuthRejection::InvalidToken(Rejection::Malformed);
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (Some(value), None) => value,
        (None, _) => return Err(AuthRejection::MissingToken),
        // Several: only a single header is unambiguous.
        (Some(_), Some(_)) => return Err(invalid),
    };
    // Bytes rather than `to_str`, and no token68 scan: a token that is not ASCII or not
    // well-formed fails verification with the same answer, for less work on every request.
    let value = value.as_bytes();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return Err(if value.eq_ignore_ascii_case(b"bearer") {
            invalid
        } else {
            AuthRejection::MissingToken
        });
    };
    let (scheme, token) = (&value[..space], &value[space + 1..]);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthRejection::MissingToken);
    }
    std::str::from_utf8(token).map_err(|_| invalid)
}

/// Verifies the request's bearer token with `verifier`.
pub async fn authenticate(
    verifier: &Verifier,
    headers: &HeaderMap,
) -> Result<Arc<AccessClaims>, AuthRejection> {
    let token = bearer_token(headers)?;
    Ok(verifier.verify_access(token).await?)
}

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        if let Some(authenticated) = parts.extensions.get::<Authenticated>() {
            return Ok(authenticated.clone());
        }
        let verifier = Arc::<Verifier>::from_ref(state);
        authenticate(&verifier, &parts.headers)
            .await
            .map(Authenticated)
    }
}

/// A layer that lets through only requests with a valid access token, and puts
/// [`Authenticated`] in their extensions (for `Extension<Authenticated>` or the extractor).
#[derive(Clone)]
pub struct RequireAccessToken {
    verifier: Arc<Verifier>,
}

impl RequireAccessToken {
    pub fn new(verifier: Arc<Verifier>) -> RequireAccessToken {
        RequireAccessToken { verifier }
    }
}

impl<S> tower_layer::Layer<S> for RequireAccessToken {
    type Service = RequireAccessTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAccessTokenService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service of [`RequireAccessToken`].
#[derive(Clone)]
pub struct RequireAccessTokenService<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

impl<S, B> tower_service::Service<Request<B>> for RequireAccessTokenService<S>
where
    S: tower_service::Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request; a fresh one waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            match authenticate(&verifier, request.headers()).await {
                Ok(claims) => {
                    request.extensions_mut().insert(Authenticated(claims));
                    inner.call(request).await
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}
