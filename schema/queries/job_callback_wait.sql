-- The endpoint answered 202: the job waits for its callback (docket.callback_wait), fenced.
-- $1 uuid worker, $2 bigint id, $3 int attempt, $4 text token hash (hex), $5 float8 deadline in
-- seconds from now, $6 float8 the kind's backoff for this attempt in seconds
SELECT docket.callback_wait($1::uuid, $2::bigint, $3::int, $4, $5::float8, $6::float8)
