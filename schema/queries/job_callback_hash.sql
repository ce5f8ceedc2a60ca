-- A job's current callback token hash (hex), for the API's constant-time comparison; no row: no job.
-- $1 bigint id
SELECT encode(j.callback_hash, 'hex') FROM docket.jobs j WHERE j.id = $1::bigint
