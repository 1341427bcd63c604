//! The JSON shapes of the API's records, with their OpenAPI schemas: the store's records
//! as clients see them (docs/api.md, "Records").

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::{AuditRecord, Job, Session, User};

/// A person who can sign in. Never carries a password or its hash.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserView {
    id: Uuid,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    gender: String,
    phone: String,
    city: String,
    /// `admin` grants the admin API.
    roles: Vec<String>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            id: user.id,
            username: user.username,
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            gender: user.gender,
            phone: user.phone,
            city: user.city,
            roles: user.roles,
        }
    }
}

/// A user as administrators see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserView {
    #[serde(flatten)]
    user: UserView,
    /// A disabled user cannot sign in.
    disabled: bool,
}

impl From<User> for AdminUserView {
    fn from(user: User) -> Self {
        AdminUserView {
            disabled: user.disabled_at.is_some(),
            user: user.into(),
        }
    }
}

/// One event of the audit log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventView {
    id: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    at: OffsetDateTime,
    /// Such as `login`, `refresh_reuse`, `password_change`, `admin_disable_user`.
    event: String,
    /// `ok`, `failed`, `refused` or `rate_limited`.
    outcome: String,
    user_id: Option<Uuid>,
    username: Option<String>,
    session_id: Option<Uuid>,
    ip: Option<String>,
    user_agent: Option<String>,
    /// The administrator who acted, when it was not the user.
    actor_id: Option<Uuid>,
    detail: Option<String>,
}

impl From<AuditRecord> for AuditEventView {
    fn from(record: AuditRecord) -> Self {
        AuditEventView {
            id: record.id,
            at: record.at,
            event: record.event,
            outcome: record.outcome,
            user_id: record.user_id,
            username: record.username,
            session_id: record.session_id,
            ip: record.ip,
            user_agent: record.user_agent,
            actor_id: record.actor_id,
            detail: record.detail,
        }
    }
}

/// One of the user's jobs. Borrows the record: the job list is written straight from the
/// store's rows.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Job)]
pub struct JobView<'a> {
    id: Uuid,
    user_id: Uuid,
    company_name: &'a str,
    title: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    first_date: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    last_date: OffsetDateTime,
    skills: &'a str,
    department: &'a str,
    ein: &'a str,
}

/// A job list, written element by element without collecting views first.
pub struct JobList<'a>(pub &'a [Job]);

impl Serialize for JobList<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(JobView::from))
    }
}

impl<'a> From<&'a Job> for JobView<'a> {
    fn from(job: &'a Job) -> Self {
        JobView {
            id: job.id,
            user_id: job.user_id,
            company_name: &job.company_name,
            title: &job.title,
            first_date: job.first_date,
            last_date: job.last_date,
            skills: &job.skills,
            department: &job.department,
            ein: &job.ein,
        }
    }
}

/// One signed-in device of the caller.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    last_used_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: OffsetDateTime,
    user_agent: Option<String>,
    ip: Option<String>,
    /// True for the session whose access token made the call.
    current: bool,
}

impl SessionView {
    pub fn new(session: Session, current_sid: Uuid) -> Self {
        SessionView {
            current: session.id == current_sid,
            id: session.id,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
            user_agent: session.user_agent,
            ip: session.ip,
        }
    }
}
