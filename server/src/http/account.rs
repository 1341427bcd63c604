//! What a signed-in caller may read and do with their own account.

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::{ApiError, Problem};
use super::extract::AuthUser;
use super::views::{JobList, JobView, SessionView, UserView};
use super::AppState;
use crate::audit::{Client, Event};
use crate::store::Job;
use crate::tokens::AccessClaims;

/// About the size of one job in JSON: two UUIDs, two dates, five short strings.
const JOB_JSON_SIZE: usize = 320;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/current-user", get(current_user))
        .route("/api/job-list", get(job_list))
        .route(
            "/api/sessions",
            get(list_sessions).delete(revoke_all_sessions),
        )
        .route("/api/sessions/{id}", delete(revoke_session))
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/current-user", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = Problem)))]
pub async fn current_user(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<UserView>, ApiError> {
    let user = state.store.find_user(claims.sub).await?;
    // A deleted user's token is as good as no token.
    user.map(|user| Json(user.into()))
        .ok_or(ApiError::Unauthorized { token_sent: true })
}

/// The caller's jobs, newest first.
#[utoipa::path(get, path = "/api/job-list", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = [JobView]), (status = 401, body = Problem)))]
pub async fn job_list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Response, ApiError> {
    let jobs = state.store.jobs_of(claims.sub).await?;
    Ok(job_list_response(&jobs))
}

/// The job list as `GET /api/job-list` sends it (also the bench's baseline). Written into a
/// buffer of about the right size rather than through `Json`, which grows a `BytesMut` from
/// 128 bytes: that was a quarter of the cost of writing the list.
pub fn job_list_response(jobs: &[Job]) -> Response {
    let mut body = Vec::with_capacity(JOB_JSON_SIZE * jobs.len() + 2);
    match serde_json::to_writer(&mut body, &JobList(jobs)) {
        Ok(()) => ([(CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

/// The caller's live sessions, newest first.
#[utoipa::path(get, path = "/api/sessions", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = [SessionView]), (status = 401, body = Problem)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let sessions = state
        .sessions
        .list(claims.sub, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionView::new(s, claims.sid))
            .collect(),
    ))
}

/// Signs one of the caller's devices out.
#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    client: Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    if !state.sessions.revoke(claims.sub, id).await? {
        return Err(ApiError::NotFound);
    }
    let event = Event::new("session_revoked", "ok")
        .session(id)
        .detail(format!("by session {}", claims.sid));
    state
        .accounts
        .audit()
        .record(caller(event, &claims), &client)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `event` about the caller of a request authenticated by `claims`.
pub fn caller(event: Event, claims: &AccessClaims) -> Event {
    Event {
        user_id: Some(claims.sub),
        username: Some(claims.user.username.clone()),
        ..event
    }
}

/// Signs the caller out everywhere.
#[utoipa::path(delete, path = "/api/sessions", tag = "account", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn revoke_all_sessions(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    client: Client,
) -> Result<StatusCode, ApiError> {
    let ended = state.sessions.revoke_all(claims.sub, None).await?;
    let event = Event::new("signed_out_everywhere", "ok")
        .session(claims.sid)
        .detail(format!("{ended} sessions revoked"));
    state
        .accounts
        .audit()
        .record(caller(event, &claims), &client)
        .await;
    Ok(StatusCode::NO_CONTENT)
}
