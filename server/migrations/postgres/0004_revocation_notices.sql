-- Every instance follows revocations so that a revoked session's access tokens stop working
-- everywhere within seconds: a statement that revokes sessions wakes them up (delivered at
-- commit; several in one transaction arrive as one). They then read what changed.
CREATE FUNCTION tollgate_notify_revocation() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('tollgate_revocations', '');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER sessions_revoked AFTER UPDATE OF revoked_at ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION tollgate_notify_revocation();
