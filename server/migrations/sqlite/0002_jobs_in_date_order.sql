-- The job list is read newest first on every request: let the index hand the rows over in
-- that order instead of sorting them each time.
DROP INDEX jobs_by_user;
CREATE INDEX jobs_by_user ON jobs (user_id, first_date DESC);
