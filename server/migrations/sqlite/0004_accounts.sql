-- Accounts (docs/api.md, "Accounts"): roles, disabled users, password resets, the audit log.

-- Roles as a comma-separated list (role names cannot hold commas); disabled users keep their
-- row but cannot sign in.
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN disabled_at INTEGER;

-- Sessions outlive a deleted user until they are swept: the revocation feed is read from
-- them, and resource servers must learn that the deleted user's sessions are revoked. So the
-- table is rebuilt without the cascading foreign key (SQLite cannot drop one in place).
CREATE TABLE sessions_without_cascade (
    id               TEXT PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL,
    generation       INTEGER NOT NULL,
    rotated_at       INTEGER,
    created_at       INTEGER NOT NULL,
    last_used_at     INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    revoked_at       INTEGER,
    fingerprint_hash TEXT,
    user_agent       TEXT,
    ip               TEXT
);
INSERT INTO sessions_without_cascade SELECT id, user_id, generation, rotated_at, created_at,
    last_used_at, expires_at, revoked_at, fingerprint_hash, user_agent, ip FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_without_cascade RENAME TO sessions;
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_revocation ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Only a SHA-256 of each reset token is kept; a token is used once.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
CREATE INDEX password_resets_by_user ON password_resets (user_id);

-- One row per security event. No foreign keys: the history of a deleted user stays.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    event      TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    user_id    TEXT,
    username   TEXT,
    session_id TEXT,
    ip         TEXT,
    user_agent TEXT,
    actor_id   TEXT,
    detail     TEXT
);
CREATE INDEX audit_log_by_time ON audit_log (at);
CREATE INDEX audit_log_by_user ON audit_log (user_id, id);
CREATE INDEX audit_log_by_username ON audit_log (username, id);
