//! Revocation for resource servers: the feed of revoked sessions, RFC 7009 revocation and
//! RFC 7662 introspection.

use axum::extract::{Query, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ApiError, Problem};
use super::extract::ApiForm;
use super::AppState;
use crate::audit::{Client, Event};
use crate::sessions::{Introspection, RevocationPage, TokenKind};
use crate::store::RevocationCursor;
use crate::tokens::Confirmation;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/revocations", get(revocations))
        .route("/api/revoke", post(revoke))
        .route("/api/introspect", post(introspect))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct FeedQuery {
    /// The `cursor` of the previous page; omitted, the feed starts with the oldest revocation
    /// whose access tokens may still be valid.
    after: Option<String>,
}

/// Sessions revoked after the cursor, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationFeed {
    revoked: Vec<RevokedSession>,
    /// Where the next request continues (`?after=`). Pages overlap a little: a session may
    /// be named twice.
    cursor: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedSession {
    sid: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    revoked_at: OffsetDateTime,
}

/// The sessions revoked recently: a resource server refuses their access tokens.
#[utoipa::path(get, path = "/api/revocations", tag = "revocation", params(FeedQuery),
    responses(
        (status = 200, body = RevocationFeed),
        (status = 400, description = "Not a cursor this server gave", body = Problem),
    ))]
pub async fn revocations(
    State(state): State<AppState>,
    Query(query): Query<FeedQuery>,
) -> Result<Json<RevocationFeed>, ApiError> {
    let after = query.after.as_deref().map(parse_cursor).transpose()?;
    let page = state
        .sessions
        .revocation_feed(after, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(feed(page)))
}

fn feed(page: RevocationPage) -> RevocationFeed {
    RevocationFeed {
        revoked: page
            .revoked
            .into_iter()
            .map(|(sid, revoked_at)| RevokedSession { sid, revoked_at })
            .collect(),
        cursor: format_cursor(page.next),
    }
}

/// `MILLIS-SID`: the revocation time in Unix milliseconds and the session id.
fn format_cursor(cursor: RevocationCursor) -> String {
    let millis = cursor.revoked_at.unix_timestamp_nanos() / 1_000_000;
    format!("{millis}-{}", cursor.sid.simple())
}

fn parse_cursor(text: &str) -> Result<RevocationCursor, ApiError> {
    let bad = || ApiError::BadRequest("The cursor is not one this server gave.".into());
    let (millis, sid) = text.split_once('-').ok_or_else(bad)?;
    let millis: i64 = millis.parse().map_err(|_| bad())?;
    let revoked_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .map_err(|_| bad())?;
    let sid = Uuid::try_parse(sid).map_err(|_| bad())?;
    Ok(RevocationCursor { revoked_at, sid })
}

/// An RFC 7009 or RFC 7662 request body (form-encoded).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenForm {
    token: String,
    /// `access_token` or `refresh_token`: which kind to try first.
    token_type_hint: Option<String>,
}

/// RFC 7009: revoke the session of a refresh or access token. 200 whether or not the token
/// was valid, as the RFC asks.
#[utoipa::path(post, path = "/api/revoke", tag = "revocation",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "No token in the body", body = Problem),
        (status = 415, description = "Not form-encoded", body = Problem),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    client: Client,
    ApiForm(form): ApiForm<TokenForm>,
) -> Result<StatusCode, ApiError> {
    let hint = hint(form.token_type_hint.as_deref());
    if let Some((sid, user)) = state.sessions.revoke_token(&form.token, hint).await? {
        let event = Event {
            user_id: Some(user),
            ..Event::new("token_revoked", "ok").session(sid)
        };
        state.accounts.audit().record(event, &client).await;
    }
    Ok(StatusCode::OK)
}

fn hint(hint: Option<&str>) -> Option<TokenKind> {
    match hint {
        Some("access_token") => Some(TokenKind::Access),
        Some("refresh_token") => Some(TokenKind::Refresh),
        // RFC 7009: an unknown hint is ignored.
        _ => None,
    }
}

/// RFC 7662: whether a token is active, and what it says.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct IntrospectionResponse {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<Uuid>,
    /// `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    /// For a token bound to a DPoP key: `{"jkt"}`, its thumbprint (RFC 9449 §6.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    cnf: Option<Confirmation>,
}

impl From<Introspection> for IntrospectionResponse {
    fn from(active: Introspection) -> Self {
        IntrospectionResponse {
            active: true,
            sub: Some(active.sub),
            sid: Some(active.sid),
            username: active.username,
            exp: Some(active.exp),
            iat: Some(active.iat),
            iss: Some(active.iss),
            aud: Some(active.aud),
            jti: Some(active.jti),
            token_type: Some(match active.kind {
                TokenKind::Access => "access_token",
                TokenKind::Refresh => "refresh_token",
            }),
            cnf: active.jkt.map(|jkt| Confirmation { jkt }),
        }
    }
}

/// RFC 7662 introspection for resource servers holding one of
/// `TOLLGATE_INTROSPECTION_SECRETS` (sent as `Authorization: Bearer`).
#[utoipa::path(post, path = "/api/introspect", tag = "revocation",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("introspection" = [])),
    responses(
        (status = 200, body = IntrospectionResponse),
        (status = 400, description = "No token in the body", body = Problem),
        (status = 401, description = "No or a wrong secret", body = Problem),
        (status = 404, description = "Introspection is not configured", body = Problem),
    ))]
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<ApiForm<TokenForm>, ApiError>,
) -> Result<Response, ApiError> {
    let secrets = &state.config.introspection_secrets;
    if secrets.is_empty() {
        return Err(ApiError::NotFound);
    }
    let presented = headers
        .get(AUTHORIZATION)
        .map(|value| value.as_bytes())
        .filter(|value| value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer "))
        .map_or(&[][..], |value| &value[7..]);
    // Every secret is compared, in constant time, whichever matches.
    let known = secrets.iter().fold(0u8, |known, secret| {
        known | presented.ct_eq(secret.expose()).unwrap_u8()
    });
    if known == 0 {
        return Err(ApiError::Unauthorized {
            token_sent: !presented.is_empty(),
        });
    }
    let ApiForm(form) = form?;
    let active = state
        .sessions
        .introspect(&form.token, OffsetDateTime::now_utc())
        .await?;
    let body = active.map(IntrospectionResponse::from).unwrap_or_default();
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_itself_and_junk_is_refused() {
        let cursor = RevocationCursor {
            revoked_at: OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_000_000)
                .expect("a valid time"),
            sid: Uuid::from_u128(42),
        };
        let text = format_cursor(cursor);
        assert_eq!(parse_cursor(&text).expect("parses"), cursor);
        for junk in [
            "",
            "-",
            "12",
            "x-00000000000000000000000000000000",
            "1-nope",
            "99999999999999999999-0",
        ] {
            assert!(parse_cursor(junk).is_err(), "{junk:?}");
        }
    }
}
