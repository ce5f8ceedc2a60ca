-- Cancel a job (docket.cancel) and report what it was before.
-- $1 bigint id
SELECT (SELECT j.state::text FROM docket.jobs j WHERE j.id = $1) AS before, docket.cancel($1) AS changed
