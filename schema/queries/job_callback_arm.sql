-- Before a callback kind's request: store the run's token hash (docket.callback_arm), fenced.
-- $1 uuid worker, $2 bigint id, $3 int attempt, $4 text SHA-256 of the token, hex
SELECT docket.callback_arm($1::uuid, $2::bigint, $3::int, $4)
