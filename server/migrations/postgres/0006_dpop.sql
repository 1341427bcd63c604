-- DPoP (RFC 9449): a session signed in with a proof is bound to its key's thumbprint.
ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT;

-- Proofs seen within their window (SHA-256 of key thumbprint and jti), so that every instance
-- agrees that a proof is used once; `forget_at` in Unix seconds.
CREATE TABLE dpop_replays (
    key BYTEA PRIMARY KEY,
    forget_at BIGINT NOT NULL
);

-- Secrets every instance shares, made by the first one that needs them (the DPoP nonce key).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
