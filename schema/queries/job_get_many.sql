-- Jobs by id as JSON, in no particular order (ids with no job are left out): what the waiters of
-- one process read in a single round trip, however many wait.
-- $1 bigint[] ids
SELECT docket.job_json(j)::text AS job FROM docket.jobs j WHERE j.id = ANY ($1::bigint[])
