-- docket bench latency: each job's id and result.
-- $1 text kind
SELECT id, result::text FROM docket.jobs WHERE kind = $1 AND state = 'completed' ORDER BY id
