-- Times are Unix milliseconds; ids are UUID text.
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL,
    first_name    TEXT NOT NULL,
    last_name     TEXT NOT NULL,
    gender        TEXT NOT NULL,
    phone         TEXT NOT NULL,
    city          TEXT NOT NULL,
    password_hash TEXT NOT NULL
);

CREATE TABLE jobs (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    company_name TEXT NOT NULL,
    title        TEXT NOT NULL,
    first_date   INTEGER NOT NULL,
    last_date    INTEGER NOT NULL,
    skills       TEXT NOT NULL,
    department   TEXT NOT NULL,
    ein          TEXT NOT NULL
);
CREATE INDEX jobs_by_user ON jobs (user_id);

CREATE TABLE sessions (
    id               TEXT PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
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
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_revocation ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    alg         TEXT NOT NULL,
    private_der BLOB NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
-- At most one current key per algorithm, so instances racing on first start agree on one.
CREATE UNIQUE INDEX one_current_key_per_alg ON signing_keys (alg) WHERE retired_at IS NULL;
