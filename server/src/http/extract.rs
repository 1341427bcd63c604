//! Request extractors: JSON bodies that fail as problem+json, and the bearer-token identity.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_TYPE, HOST, ORIGIN, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

use super::error::{ApiError, DpopChallenge};
use super::AppState;
use crate::audit::Client;
use crate::config::DpopMode;
use crate::sessions::ProofRequest;
use crate::tokens::AccessClaims;
use tollgate_verify::axum::{authenticate, dpop_proof, AuthRejection};
use tollgate_verify::dpop::{Dpop, DpopError, ProofRejection};

/// `axum::Json` whose rejections are problem+json (400, 413 or 415).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::Form` (`application/x-www-form-urlencoded`) whose rejections are problem+json.
#[derive(FromRequest)]
#[from_request(via(axum::Form), rejection(ApiError))]
pub struct ApiForm<T>(pub T);

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

pub fn is_json(headers: &HeaderMap) -> bool {
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

/// The caller, known only from a verified access token (RFC 6750 bearer) of a session that
/// was not revoked: `tollgate_verify`'s check, as resource servers run it.
pub struct AuthUser(pub Arc<AccessClaims>);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let htu = proof_uri(parts, state);
        authenticate(state.tokens.verifier(), &parts.method, &htu, &parts.headers)
            .await
            .map(AuthUser)
            .map_err(|rejection| match rejection {
                AuthRejection::MissingToken => ApiError::Unauthorized { token_sent: false },
                AuthRejection::InvalidToken(reason) => {
                    tracing::debug!(%reason, "access token refused");
                    ApiError::Unauthorized { token_sent: true }
                }
                AuthRejection::InvalidDpopToken(reason) => {
                    tracing::debug!(%reason, "DPoP access token refused");
                    ApiError::DpopUnauthorized(DpopChallenge::InvalidToken)
                }
                AuthRejection::InvalidProof(reason) => {
                    tracing::debug!(%reason, "DPoP proof refused");
                    ApiError::DpopUnauthorized(DpopChallenge::InvalidProof)
                }
                AuthRejection::UseNonce(nonce) => {
                    ApiError::DpopUnauthorized(DpopChallenge::UseNonce(nonce))
                }
                AuthRejection::Unavailable(error) => ApiError::unavailable(error),
            })
    }
}

/// The request's DPoP proof as it came, and what it must be for (method and URI); checked only
/// where it matters (a sign-in after the rate limit, a refresh of a bound session), so that a
/// flood of proofs costs no more than the requests.
pub struct DpopProof(Option<ProofRequest>);

impl FromRequestParts<AppState> for DpopProof {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let proof = match dpop_proof(&parts.headers) {
            Err(ProofRejection::Missing) => return Ok(DpopProof(None)),
            Err(rejection) => Err(rejection),
            Ok(proof) => Ok(proof.to_owned()),
        };
        Ok(DpopProof(Some(ProofRequest {
            proof,
            method: parts.method.to_string(),
            htu: proof_uri(parts, state),
        })))
    }
}

impl DpopProof {
    /// The proof a sign-in sent and the checks to hold it to: none without a proof, or where
    /// DPoP is off.
    fn for_sign_in<'a>(&'a self, state: &'a AppState) -> Option<(&'a ProofRequest, &'a Dpop)> {
        let (Some(request), Some(dpop)) = (&self.0, state.tokens.verifier().dpop()) else {
            return None;
        };
        (state.config.dpop != DpopMode::Off).then_some((request, dpop))
    }

    /// A sign-in's nonce challenge (400 `use_dpop_nonce`), answered before the sign-in budget
    /// is spent: it is a step of the protocol, not an attempt, and gets no further.
    pub fn nonce_challenge(&self, state: &AppState) -> Result<(), ApiError> {
        let Some((
            ProofRequest {
                proof: Ok(proof), ..
            },
            dpop,
        )) = self.for_sign_in(state)
        else {
            return Ok(());
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match dpop.nonce_challenge(proof, now) {
            Some(nonce) => Err(ApiError::DpopNonce(nonce)),
            None => Ok(()),
        }
    }

    /// The key a sign-in binds its session to: none without a proof or where DPoP is off; a
    /// refused proof is a 400.
    pub async fn bind(&self, state: &AppState) -> Result<Option<String>, ApiError> {
        let Some((request, dpop)) = self.for_sign_in(state) else {
            return Ok(None);
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match request.check(dpop, now).await {
            Ok(proof) => Ok(Some(proof.jkt)),
            Err(DpopError::Rejected(reason)) => {
                tracing::debug!(%reason, "sign-in DPoP proof refused");
                Err(ApiError::DpopProofRefused)
            }
            Err(DpopError::UseNonce(nonce)) => Err(ApiError::DpopNonce(nonce)),
            Err(DpopError::Unavailable(cause)) => Err(ApiError::Unavailable(cause)),
        }
    }

    /// The proof for the session to check, if its session is bound.
    pub fn request(self) -> Option<ProofRequest> {
        self.0
    }
}

/// The URI the client called, as a DPoP proof's `htu` names it: `TOLLGATE_DPOP_ORIGIN` when it
/// is set; else the scheme and host a trusted proxy forwarded (`X-Forwarded-Proto`,
/// `X-Forwarded-Host`), or our own (`https` when serving TLS) and the `Host` header.
fn proof_uri(parts: &Parts, state: &AppState) -> String {
    let path = parts.uri.path();
    if let Some(origin) = state
        .tokens
        .verifier()
        .dpop()
        .and_then(|dpop| dpop.origin())
    {
        return format!("{origin}{path}");
    }
    let from_proxy = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| is_trusted(&peer.ip(), &state.config.trusted_proxies));
    // The first entry: the one the proxy nearest the client wrote.
    let forwarded = |name: &str| {
        from_proxy
            .then(|| parts.headers.get(name)?.to_str().ok())
            .flatten()
            .and_then(|value| value.split(',').next())
            .map(str::trim)
    };
    let own_scheme = if state.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let scheme = forwarded("x-forwarded-proto").unwrap_or(own_scheme);
    let host = forwarded("x-forwarded-host")
        .or_else(|| parts.uri.authority().map(|authority| authority.as_str()))
        .or_else(|| parts.headers.get(HOST).and_then(|host| host.to_str().ok()))
        .unwrap_or_default();
    format!("{scheme}://{host}{path}")
}

/// A caller with the `admin` role, in their token and still in the store: a token's roles
/// are as old as the token, and a demoted or disabled administrator must stop at once.
pub struct AdminUser(pub Arc<AccessClaims>);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AuthUser(claims) = AuthUser::from_request_parts(parts, state).await?;
        let forbidden = || ApiError::Forbidden("This needs the admin role.".into());
        if !claims.has_role("admin") {
            return Err(forbidden());
        }
        match state.store.find_user(claims.sub).await? {
            Some(user) if user.has_role("admin") && user.disabled_at.is_none() => {
                Ok(AdminUser(claims))
            }
            _ => Err(forbidden()),
        }
    }
}

/// Who sent the request, for the audit log and the sessions list.
impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        Ok(Client {
            ip: Some(ip.to_string()),
            user_agent: parts
                .headers
                .get(USER_AGENT)
                .and_then(|agent| agent.to_str().ok())
                .map(str::to_owned),
        })
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the nearest
/// untrusted address in `X-Forwarded-For` (read right to left, as proxies append).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ConnectInfo(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
            .ok_or_else(|| ApiError::internal("no peer address on the request"))?;
        Ok(ClientIp(client_ip(
            peer.ip(),
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(&peer, trusted) {
        return peer;
    }
    // Right to left, over every entry: each trusted proxy appended the address it saw, so the
    // first untrusted address from the right is the client. Entries left of it, or that do
    // not parse, were written by the client and can neither displace it nor stop the search.
    // Bytes, split before decoding: one non-ASCII byte from the client must not hide the
    // entries a proxy appended to the same line.
    let entries: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .collect();
    let mut nearest_proxy = peer;
    for ip in entries
        .iter()
        .rev()
        .filter_map(|entry| forwarded_address(entry))
    {
        if !is_trusted(&ip, trusted) {
            return ip;
        }
        nearest_proxy = ip;
    }
    // Only proxies all the way: the one farthest out is the closest we know to the client.
    nearest_proxy
}

/// Whether `ip` is one of the configured proxies, whose forwarded headers are believed.
fn is_trusted(ip: &IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|socket| socket.ip()))
}

/// Guards the cookie transport against cross-site requests: a browser's cross-site request
/// carries a foreign `Origin`, and cannot send `Content-Type: application/json` without a CORS
/// preflight that we would refuse.
pub fn origin_allowed(headers: &HeaderMap, state: &AppState) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        // Not a browser, or a same-origin GET/HEAD: nothing cross-site to fear.
        return true;
    };
    if state
        .config
        .cors_origins
        .iter()
        .any(|allowed| allowed == origin)
    {
        return true;
    }
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, host)| host);
    let host = headers.get(HOST).and_then(|host| host.to_str().ok());
    origin_host.is_some() && origin_host == host
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, value.parse().expect("header"));
        headers
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        let peer: IpAddr = "203.0.113.9".parse().expect("ip");
        assert_eq!(client_ip(peer, &forwarded("198.51.100.1"), &[]), peer);
        let trusted = ["10.0.0.0/8".parse().expect("net")];
        assert_eq!(client_ip(peer, &forwarded("198.51.100.1"), &trusted), peer);
    }

    #[test]
    fn the_nearest_untrusted_forwarded_address_is_the_client() {
        let proxy: IpAddr = "10.0.0.2".parse().expect("ip");
        let trusted = ["10.0.0.0/8".parse().expect("net")];
        // The leftmost entry is whatever the client claimed; only the proxies' appends count.
        let headers = forwarded("1.2.3.4, 198.51.100.7, 10.0.0.5");
        assert_eq!(
            client_ip(proxy, &headers, &trusted),
            "198.51.100.7".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        assert_eq!(client_ip(proxy, &forwarded("garbage"), &trusted), proxy);
    }

    #[test]
    fn a_malformed_forwarded_entry_cannot_displace_the_appended_address() {
        let proxy: IpAddr = "10.0.0.2".parse().expect("ip");
        let trusted = ["10.0.0.0/8".parse().expect("net")];
        let client: IpAddr = "198.51.100.7".parse().expect("ip");
        for header in [
            "garbage, 198.51.100.7",
            "1.2.3.4, garbage, 198.51.100.7, 10.0.0.5",
            "999.1.1.1,198.51.100.7",
            "198.51.100.7:4711, 10.0.0.5",
        ] {
            assert_eq!(
                client_ip(proxy, &forwarded(header), &trusted),
                client,
                "{header}"
            );
        }
        // A byte that is not ASCII spoils only its own entry.
        let mut headers = HeaderMap::new();
        headers.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"\x80junk, 198.51.100.7").expect("header"),
        );
        assert_eq!(client_ip(proxy, &headers, &trusted), client);
        // Several headers are one list, in order.
        let mut headers = forwarded("garbage");
        headers.append(X_FORWARDED_FOR, "198.51.100.7".parse().expect("header"));
        assert_eq!(client_ip(proxy, &headers, &trusted), client);
        // IPv6, with and without a port.
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        assert_eq!(
            client_ip(proxy, &forwarded("x, [2001:db8::1]:443"), &trusted),
            v6
        );
        assert_eq!(
            client_ip(proxy, &forwarded("2001:db8::1, 10.0.0.9"), &trusted),
            v6
        );
        // Nothing but proxies: the farthest one.
        let far: IpAddr = "10.0.0.9".parse().expect("ip");
        assert_eq!(
            client_ip(proxy, &forwarded("garbage, 10.0.0.9, 10.0.0.5"), &trusted),
            far
        );
    }
}
