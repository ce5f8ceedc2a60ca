-- One job as JSON (timestamps in ISO 8601).
-- $1 bigint id
SELECT docket.job_json(j)::text AS job FROM docket.jobs j WHERE j.id = $1
