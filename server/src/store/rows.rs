//! The tables' rows as sqlx reads them. Each row struct declares its columns once (`row!`):
//! the struct, its column list, its placeholders, its binder for inserts and its rusqlite
//! reader all come from that one list. Conversions to and from the store's records sit
//! beside each row, and the compiler checks that they name every field.

use sqlx::Any;

use super::{
    from_millis, parse_uuid, to_millis, AuditRecord, Job, Session, StoreError, StoreResult,
    StoredKey, User,
};

/// A row struct whose fields are its table's columns, declared once: the struct (read by
/// sqlx), its `COLUMNS` list and `placeholders()` for queries, its binder for inserts and
/// its reader for rusqlite all come from one list, so that they cannot drift apart.
macro_rules! row {
    ($(#[$meta:meta])* struct $name:ident { $first:ident: $first_type:ty $(, $field:ident: $type:ty)* $(,)? }) => {
        $(#[$meta])*
        #[derive(sqlx::FromRow)]
        pub(super) struct $name {
            pub(super) $first: $first_type,
            $(pub(super) $field: $type,)*
        }

        impl $name {
            /// The columns, in the order of the fields.
            pub(super) const COLUMNS: &'static str =
                concat!(stringify!($first) $(, ", ", stringify!($field))*);

            /// How many columns.
            pub(super) const COUNT: usize = 1 $(+ { let _ = stringify!($field); 1 })*;

            /// `$1, $2, …`, one per column.
            #[allow(dead_code, reason = "not every table is inserted as a whole row")]
            pub(super) fn placeholders() -> String {
                placeholders(1..=Self::COUNT)
            }

            /// Binds every field, in the order of `COLUMNS`.
            #[allow(dead_code, reason = "rows with a generated id are inserted without it")]
            pub(super) fn bind_all(self, query: AnyQuery<'_>) -> AnyQuery<'_> {
                query.bind(self.$first)$(.bind(self.$field))*
            }

            /// Reads the row from a rusqlite result of `SELECT COLUMNS`: by position, which is
            /// the order of the fields (a struct expression evaluates its fields in the order
            /// written), cheaper than looking each column up by name.
            #[allow(dead_code, reason = "only the hot tables are read through rusqlite")]
            pub(super) fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                let mut position = 0..;
                let mut next = move || position.next().unwrap_or(usize::MAX);
                Ok($name {
                    $first: row.get(next())?,
                    $($field: row.get(next())?,)*
                })
            }
        }
    };
}

pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// `$first, …, $last`.
pub(super) fn placeholders(numbers: std::ops::RangeInclusive<usize>) -> String {
    numbers
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

row! {
    struct UserRow {
        id: String,
        username: String,
        email: String,
        first_name: String,
        last_name: String,
        gender: String,
        phone: String,
        city: String,
        roles: String,
        disabled_at: Option<i64>,
    }
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(row: UserRow) -> StoreResult<User> {
        Ok(User {
            id: parse_uuid(&row.id)?,
            username: row.username,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            gender: row.gender,
            phone: row.phone,
            city: row.city,
            roles: row
                .roles
                .split(',')
                .filter(|role| !role.is_empty())
                .map(str::to_owned)
                .collect(),
            disabled_at: row.disabled_at.map(from_millis).transpose()?,
        })
    }
}

row! {
    struct JobRow {
        id: String,
        user_id: String,
        company_name: String,
        title: String,
        first_date: i64,
        last_date: i64,
        skills: String,
        department: String,
        ein: String,
    }
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(row: JobRow) -> StoreResult<Job> {
        Ok(Job {
            id: parse_uuid(&row.id)?,
            user_id: parse_uuid(&row.user_id)?,
            company_name: row.company_name,
            title: row.title,
            first_date: from_millis(row.first_date)?,
            last_date: from_millis(row.last_date)?,
            skills: row.skills,
            department: row.department,
            ein: row.ein,
        })
    }
}

impl From<&Job> for JobRow {
    fn from(job: &Job) -> JobRow {
        JobRow {
            id: job.id.to_string(),
            user_id: job.user_id.to_string(),
            company_name: job.company_name.clone(),
            title: job.title.clone(),
            first_date: to_millis(job.first_date),
            last_date: to_millis(job.last_date),
            skills: job.skills.clone(),
            department: job.department.clone(),
            ein: job.ein.clone(),
        }
    }
}

impl From<&User> for UserRow {
    fn from(user: &User) -> UserRow {
        UserRow {
            id: user.id.to_string(),
            username: user.username.clone(),
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            gender: user.gender.clone(),
            phone: user.phone.clone(),
            city: user.city.clone(),
            roles: user.roles.join(","),
            disabled_at: user.disabled_at.map(to_millis),
        }
    }
}

row! {
    struct SessionRow {
        id: String,
        user_id: String,
        generation: i64,
        rotated_at: Option<i64>,
        created_at: i64,
        last_used_at: i64,
        expires_at: i64,
        revoked_at: Option<i64>,
        fingerprint_hash: Option<String>,
        user_agent: Option<String>,
        ip: Option<String>,
        dpop_jkt: Option<String>,
    }
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;
    fn try_from(row: SessionRow) -> StoreResult<Session> {
        Ok(Session {
            id: parse_uuid(&row.id)?,
            user_id: parse_uuid(&row.user_id)?,
            generation: row.generation,
            rotated_at: row.rotated_at.map(from_millis).transpose()?,
            created_at: from_millis(row.created_at)?,
            last_used_at: from_millis(row.last_used_at)?,
            expires_at: from_millis(row.expires_at)?,
            revoked_at: row.revoked_at.map(from_millis).transpose()?,
            fingerprint_hash: row.fingerprint_hash,
            user_agent: row.user_agent,
            ip: row.ip,
            dpop_jkt: row.dpop_jkt,
        })
    }
}

impl From<&Session> for SessionRow {
    fn from(session: &Session) -> SessionRow {
        SessionRow {
            id: session.id.to_string(),
            user_id: session.user_id.to_string(),
            generation: session.generation,
            rotated_at: session.rotated_at.map(to_millis),
            created_at: to_millis(session.created_at),
            last_used_at: to_millis(session.last_used_at),
            expires_at: to_millis(session.expires_at),
            revoked_at: session.revoked_at.map(to_millis),
            fingerprint_hash: session.fingerprint_hash.clone(),
            user_agent: session.user_agent.clone(),
            ip: session.ip.clone(),
            dpop_jkt: session.dpop_jkt.clone(),
        }
    }
}

row! {
    struct KeyRow {
        kid: String,
        alg: String,
        private_der: Vec<u8>,
        public_jwk: String,
        created_at: i64,
        activates_at: i64,
        retired_at: Option<i64>,
    }
}

impl From<&StoredKey> for KeyRow {
    fn from(key: &StoredKey) -> KeyRow {
        KeyRow {
            kid: key.kid.clone(),
            alg: key.alg.clone(),
            private_der: key.private_der.clone(),
            public_jwk: key.public_jwk.clone(),
            created_at: to_millis(key.created_at),
            activates_at: to_millis(key.activates_at),
            retired_at: key.retired_at.map(to_millis),
        }
    }
}

impl KeyRow {
    /// `key` as a new current key: a key is always inserted current (`rotate_key` retires
    /// the one before).
    pub(super) fn current(key: &StoredKey) -> KeyRow {
        KeyRow {
            retired_at: None,
            ..KeyRow::from(key)
        }
    }
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = StoreError;
    fn try_from(row: KeyRow) -> StoreResult<StoredKey> {
        Ok(StoredKey {
            kid: row.kid,
            alg: row.alg,
            private_der: row.private_der,
            public_jwk: row.public_jwk,
            created_at: from_millis(row.created_at)?,
            activates_at: from_millis(row.activates_at)?,
            retired_at: row.retired_at.map(from_millis).transpose()?,
        })
    }
}

row! {
    struct AuditRow {
        id: i64,
        at: i64,
        event: String,
        outcome: String,
        user_id: Option<String>,
        username: Option<String>,
        session_id: Option<String>,
        ip: Option<String>,
        user_agent: Option<String>,
        actor_id: Option<String>,
        detail: Option<String>,
    }
}

impl From<&AuditRecord> for AuditRow {
    fn from(record: &AuditRecord) -> AuditRow {
        AuditRow {
            id: record.id,
            at: to_millis(record.at),
            event: record.event.clone(),
            outcome: record.outcome.clone(),
            user_id: record.user_id.map(|id| id.to_string()),
            username: record.username.clone(),
            session_id: record.session_id.map(|id| id.to_string()),
            ip: record.ip.clone(),
            user_agent: record.user_agent.clone(),
            actor_id: record.actor_id.map(|id| id.to_string()),
            detail: record.detail.clone(),
        }
    }
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;
    fn try_from(row: AuditRow) -> StoreResult<AuditRecord> {
        let uuid = |text: Option<String>| text.as_deref().map(parse_uuid).transpose();
        Ok(AuditRecord {
            id: row.id,
            at: from_millis(row.at)?,
            event: row.event,
            outcome: row.outcome,
            user_id: uuid(row.user_id)?,
            username: row.username,
            session_id: uuid(row.session_id)?,
            ip: row.ip,
            user_agent: row.user_agent,
            actor_id: uuid(row.actor_id)?,
            detail: row.detail,
        })
    }
}
