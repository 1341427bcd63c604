-- A rotated-in key is published before it signs: it starts signing at `activates_at`, once
-- every instance has had time to load it. Keys that existed before signed from creation.
ALTER TABLE signing_keys ADD COLUMN activates_at INTEGER NOT NULL DEFAULT 0;
UPDATE signing_keys SET activates_at = created_at;

-- Sign-in rate limits kept in the store (used where several instances share it): one row per
-- client network or username, holding its GCRA "theoretical arrival time" (Unix milliseconds).
-- Rows whose time has passed carry no information and are swept.
CREATE TABLE login_limits (
    key TEXT PRIMARY KEY NOT NULL,
    tat INTEGER NOT NULL
);
