//! axum integration: the [`Authenticated`] extractor and the [`RequireAccessToken`] layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::extract::{FromRef, FromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use time::OffsetDateTime;

use crate::check::Rejection;
use crate::dpop::{DpopError, ProofRejection, ProofTarget};
use crate::verifier::{Verifier, VerifyError};
use crate::AccessClaims;

/// The header a DPoP proof travels in.
pub static DPOP: HeaderName = HeaderName::from_static("dpop");
/// The header a server nonce travels in.
pub static DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

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
    /// A token sent with the `DPoP` scheme, or bound to a key and sent without it, that was
    /// refused: 401 with a `DPoP error="invalid_token"` challenge.
    #[error("DPoP access token refused: {0}")]
    InvalidDpopToken(Rejection),
    /// A bound token whose proof was missing or refused: 401 `invalid_dpop_proof`.
    #[error("DPoP proof refused: {0}")]
    InvalidProof(ProofRejection),
    /// A proof without the current server nonce: 401 `use_dpop_nonce` with the nonce to use.
    #[error("a DPoP nonce is required")]
    UseNonce(String),
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

impl From<DpopError> for AuthRejection {
    fn from(error: DpopError) -> Self {
        match error {
            DpopError::Rejected(rejection) => AuthRejection::InvalidProof(rejection),
            DpopError::UseNonce(nonce) => AuthRejection::UseNonce(nonce),
            DpopError::Unavailable(cause) => {
                AuthRejection::Unavailable(VerifyError::ReplaysUnavailable(cause))
            }
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
            AuthRejection::InvalidDpopToken(_) => (
                StatusCode::UNAUTHORIZED,
                "The access token is invalid, has expired, or needs its DPoP proof.",
                Some(r#"DPoP error="invalid_token""#),
            ),
            AuthRejection::InvalidProof(_) => (
                StatusCode::UNAUTHORIZED,
                "The DPoP proof is missing or invalid.",
                Some(r#"DPoP error="invalid_dpop_proof""#),
            ),
            AuthRejection::UseNonce(_) => (
                StatusCode::UNAUTHORIZED,
                "Sign the DPoP proof again with the nonce in DPoP-Nonce.",
                Some(r#"DPoP error="use_dpop_nonce""#),
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
        if let AuthRejection::UseNonce(nonce) = &self {
            if let Ok(nonce) = HeaderValue::from_str(nonce) {
                headers.insert(DPOP_NONCE.clone(), nonce);
            }
        }
        response
    }
}

/// How an access token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer <token>`: anyone holding the token may use it.
    Bearer,
    /// `Authorization: DPoP <token>`, with a `DPoP` proof by the key the token is bound to.
    Dpop,
}

/// The token of the one `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthRejection> {
    match access_token(headers)? {
        (Scheme::Bearer, token) => Ok(token),
        (Scheme::Dpop, _) => Err(AuthRejection::MissingToken),
    }
}

/// The token of the one `Authorization: Bearer <token>` or `Authorization: DPoP <token>` header.
pub fn access_token(headers: &HeaderMap) -> Result<(Scheme, &str), AuthRejection> {
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
    let scheme_of = |name: &[u8]| {
        if name.eq_ignore_ascii_case(b"bearer") {
            Some(Scheme::Bearer)
        } else if name.eq_ignore_ascii_case(b"dpop") {
            Some(Scheme::Dpop)
        } else {
            None
        }
    };
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return Err(match scheme_of(value) {
            Some(_) => invalid,
            None => AuthRejection::MissingToken,
        });
    };
    let (name, token) = (&value[..space], &value[space + 1..]);
    let scheme = scheme_of(name).ok_or(AuthRejection::MissingToken)?;
    let token = std::str::from_utf8(token).map_err(|_| invalid)?;
    Ok((scheme, token))
}

/// The proof of the one `DPoP` header.
pub fn dpop_proof(headers: &HeaderMap) -> Result<&str, ProofRejection> {
    let mut values = headers.get_all(&DPOP).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().map_err(|_| ProofRejection::Malformed),
        (None, _) => Err(ProofRejection::Missing),
        (Some(_), Some(_)) => Err(ProofRejection::Several),
    }
}

/// The URI a proof's `htu` must name for a request to `uri`: the verifier's DPoP origin when it
/// has one, else the scheme of `uri` (`http` when it has none: a server terminating TLS itself
/// needs the origin) and its `Host`. Give it the URI before any `Router::nest` (axum's
/// `OriginalUri`); the extractor and the layer do.
pub fn proof_uri(verifier: &Verifier, uri: &Uri, headers: &HeaderMap) -> String {
    let origin = verifier.dpop().and_then(|dpop| dpop.origin());
    match origin {
        Some(origin) => format!("{origin}{}", uri.path()),
        None => {
            let scheme = uri.scheme_str().unwrap_or("http");
            let host = uri
                .authority()
                .map(|authority| authority.as_str())
                .or_else(|| headers.get(HOST).and_then(|host| host.to_str().ok()))
                .unwrap_or_default();
            format!("{scheme}://{host}{}", uri.path())
        }
    }
}

/// The URI the request came with, before a nested router (`Router::nest`) took its prefix off:
/// the one the client called, which a proof names.
fn original_uri(extensions: &http::Extensions) -> Option<&Uri> {
    extensions
        .get::<axum::extract::OriginalUri>()
        .map(|axum::extract::OriginalUri(uri)| uri)
}

/// Verifies the request's access token with `verifier`: a `Bearer` token as it is, a token
/// bound to a key only as `DPoP` with a proof by that key for `method` and `htu` (the URI the
/// client called, see [`proof_uri`]).
pub async fn authenticate(
    verifier: &Verifier,
    method: &Method,
    htu: &str,
    headers: &HeaderMap,
) -> Result<Arc<AccessClaims>, AuthRejection> {
    let (scheme, token) = access_token(headers)?;
    let claims = verifier.verify_access(token).await.map_err(|error| {
        match (AuthRejection::from(error), scheme) {
            (AuthRejection::InvalidToken(reason), Scheme::Dpop) => {
                AuthRejection::InvalidDpopToken(reason)
            }
            (rejection, _) => rejection,
        }
    })?;
    let dpop = verifier.dpop();
    let Some(jkt) = claims.bound_key() else {
        let unbound_refused = dpop.is_some_and(|dpop| dpop.requires_bound_tokens());
        return match scheme {
            Scheme::Bearer if !unbound_refused => Ok(claims),
            _ => Err(AuthRejection::InvalidDpopToken(Rejection::Unbound)),
        };
    };
    let (Scheme::Dpop, Some(dpop)) = (scheme, dpop) else {
        return Err(AuthRejection::InvalidDpopToken(Rejection::BoundToKey));
    };
    let proof = dpop_proof(headers).map_err(AuthRejection::InvalidProof)?;
    let target = ProofTarget {
        method: method.as_str(),
        uri: htu,
        access_token: Some(token),
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let proof = dpop.check(proof, &target, now).await?;
    if proof.jkt != jkt {
        return Err(AuthRejection::InvalidProof(ProofRejection::WrongKey));
    }
    Ok(claims)
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
        let uri = original_uri(&parts.extensions).unwrap_or(&parts.uri);
        let htu = proof_uri(&verifier, uri, &parts.headers);
        authenticate(&verifier, &parts.method, &htu, &parts.headers)
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
            let uri = original_uri(request.extensions()).unwrap_or(request.uri());
            let htu = proof_uri(&verifier, uri, request.headers());
            match authenticate(&verifier, request.method(), &htu, request.headers()).await {
                Ok(claims) => {
                    request.extensions_mut().insert(Authenticated(claims));
                    inner.call(request).await
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}
