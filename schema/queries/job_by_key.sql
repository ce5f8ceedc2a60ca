-- The newest job made with a unique_key, in any state, as JSON (docket.job_by_key).
-- $1 text unique_key
SELECT docket.job_json(j)::text AS job FROM docket.job_by_key($1) j
