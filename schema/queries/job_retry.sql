-- Run a job again now (docket.retry).
-- $1 bigint id
SELECT docket.retry($1)
