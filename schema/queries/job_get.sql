-- One job as JSON (timestamps in ISO 8601).
-- $1 bigint id
SELECT (to_jsonb(j) || jsonb_build_object('max_retries', docket.max_retries_of(j.max_retries, j.kind)))::text FROM docket.jobs j WHERE j.id = $1
