-- Accounts (docs/api.md, "Accounts"): roles, disabled users, password resets, the audit log.

-- Roles as a comma-separated list (role names cannot hold commas); disabled users keep their
-- row but cannot sign in.
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

-- Sessions outlive a deleted user until they are swept: the revocation feed is read from
-- them, and resource servers must learn that the deleted user's sessions are revoked.
ALTER TABLE sessions DROP CONSTRAINT sessions_user_id_fkey;

-- Only a SHA-256 of each reset token is kept; a token is used once.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX password_resets_by_user ON password_resets (user_id);

-- One row per security event. No foreign keys: the history of a deleted user stays.
CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
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
