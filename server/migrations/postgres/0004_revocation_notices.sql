-- Every instance follows revocations so that a revoked session's access tokens stop working
-- everywhere within seconds: a row whose session gets revoked wakes them up (delivered at
-- commit; identical notices of one transaction arrive as one). They then read what changed.
CREATE FUNCTION tollgate_notify_revocation() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('tollgate_revocations', '');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER sessions_revoked AFTER UPDATE OF revoked_at ON sessions
    FOR EACH ROW WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION tollgate_notify_revocation();
