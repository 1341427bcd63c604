//! The admin API (role `admin`): users, their roles, sessions and state, and the audit log.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ApiError, Problem};
use super::extract::{AdminUser, ApiJson};
use super::views::{AdminUserView, AuditEventView};
use super::AppState;
use crate::audit::Client;
use crate::users::{NewUser, UserChanges};

/// Page size when none is asked for, and the largest one served (larger asks are clamped).
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(list_users).post(create_user))
        .route(
            "/api/admin/users/{id}",
            delete(delete_user).patch(update_user),
        )
        .route("/api/admin/users/{id}/sessions", delete(end_sessions))
        .route("/api/admin/audit", get(audit_log))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Part of a username, email address or name (ASCII case ignored).
    query: Option<String>,
    /// At most this many (default 50, at most 200).
    limit: Option<String>,
    /// The `next` of the previous page.
    after: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    users: Vec<AdminUserView>,
    /// Pass as `after` for the next page; null on the last one.
    next: Option<String>,
}

/// Search and page through users, by username.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])),
    params(UsersQuery),
    responses((status = 200, body = UserPage), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_users(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    query: Result<Query<UsersQuery>, QueryRejection>,
) -> Result<Json<UserPage>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let limit = page_size(query.limit.as_deref())?;
    let users = state
        .accounts
        .search_users(
            query.query.as_deref().unwrap_or("").trim(),
            query.after.as_deref(),
            limit,
        )
        .await?;
    let next = (users.len() == limit as usize)
        .then(|| users.last().map(|user| user.username.clone()))
        .flatten();
    Ok(Json(UserPage {
        users: users.into_iter().map(AdminUserView::from).collect(),
        next,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    username: String,
    password: String,
    #[serde(default)]
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
    #[serde(default)]
    roles: Vec<String>,
}

/// Create a user.
#[utoipa::path(post, path = "/api/admin/users", tag = "admin", security(("bearer" = [])),
    request_body = NewUserRequest,
    responses((status = 201, body = AdminUserView),
        (status = 400, description = "Weak password or invalid field", body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "The username is taken", body = Problem)))]
pub async fn create_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    client: Client,
    ApiJson(request): ApiJson<NewUserRequest>,
) -> Result<(StatusCode, Json<AdminUserView>), ApiError> {
    let new = NewUser {
        username: request.username,
        email: request.email,
        first_name: request.first_name,
        last_name: request.last_name,
        gender: request.gender,
        phone: request.phone,
        city: request.city,
        roles: request.roles,
    };
    let user = state
        .accounts
        .create_user(admin.sub, new, request.password, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// The user's roles from now on (replacing them all).
    roles: Option<Vec<String>>,
    /// Disabling signs the user out everywhere and refuses their sign-ins.
    disabled: Option<bool>,
}

/// Change a user's roles or disable/enable them.
#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")), request_body = UserUpdate,
    responses((status = 200, body = AdminUserView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "Would lock the caller out", body = Problem)))]
pub async fn update_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    client: Client,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<UserUpdate>,
) -> Result<Json<AdminUserView>, ApiError> {
    let id = user_id(&id)?;
    if request.roles.is_none() && request.disabled.is_none() {
        return Err(ApiError::BadRequest(
            "Nothing to change: send roles, disabled or both.".into(),
        ));
    }
    let changes = UserChanges {
        roles: request.roles,
        disabled: request.disabled,
    };
    let user = state
        .accounts
        .update_user((admin.sub, admin.sid), id, changes, &client)
        .await?;
    Ok(Json(user.into()))
}

/// Delete a user; their sessions are revoked.
#[utoipa::path(delete, path = "/api/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "The caller's own account", body = Problem)))]
pub async fn delete_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    client: Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = user_id(&id)?;
    state.accounts.delete_user(admin.sub, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign a user out everywhere.
#[utoipa::path(delete, path = "/api/admin/users/{id}/sessions", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "User id")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn end_sessions(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    client: Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = user_id(&id)?;
    state.accounts.end_sessions(admin.sub, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQueryParams {
    /// Only events of this user id.
    user: Option<String>,
    /// At most this many (default 50, at most 200).
    limit: Option<String>,
    /// The `next` of the previous page: older events.
    before: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    events: Vec<AuditEventView>,
    /// Pass as `before` for the next (older) page; null on the last one.
    next: Option<i64>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", security(("bearer" = [])),
    params(AuditQueryParams),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn audit_log(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    query: Result<Query<AuditQueryParams>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let limit = page_size(query.limit.as_deref())?;
    let user = match query.user.as_deref().filter(|user| !user.is_empty()) {
        Some(user) => Some(
            Uuid::parse_str(user)
                .map_err(|_| ApiError::BadRequest("The user must be a user id (a UUID).".into()))?,
        ),
        None => None,
    };
    let before = match query.before.as_deref().filter(|before| !before.is_empty()) {
        Some(before) => Some(before.parse::<i64>().map_err(|_| {
            ApiError::BadRequest("before must be the next of a previous page.".into())
        })?),
        None => None,
    };
    let events = state.accounts.audit_log(user, before, limit).await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|event| event.id))
        .flatten();
    Ok(Json(AuditPage {
        events: events.into_iter().map(AuditEventView::from).collect(),
        next,
    }))
}

/// `limit` as asked, clamped to 1..=200; 50 when absent.
fn page_size(limit: Option<&str>) -> Result<u32, ApiError> {
    match limit.filter(|limit| !limit.is_empty()) {
        None => Ok(DEFAULT_PAGE),
        Some(limit) => limit
            .parse::<i64>()
            .map(|limit| limit.clamp(1, i64::from(MAX_PAGE)) as u32)
            .map_err(|_| ApiError::BadRequest("limit must be a whole number.".into())),
    }
}

fn user_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound)
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::BadRequest(format!(
        "The query string is not valid: {}",
        rejection.body_text()
    ))
}
