-- Set or remove (NULL) a kind's global quota.
-- $1 text kind, $2 int max_running
SELECT docket.set_limit($1, $2::int)
