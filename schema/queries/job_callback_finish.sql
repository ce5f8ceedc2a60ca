-- A token holder's outcome (docket.callback_finish): the state reached, or why it was refused.
-- $1 bigint id, $2 text token hash (hex), $3 text outcome, $4 float8 delay in seconds (NULL: the
-- kind's backoff), $5 jsonb result, $6 text error, $7 jsonb progress (NULL: unchanged)
SELECT docket.callback_finish($1::bigint, $2, $3, $4::float8, $5::jsonb, $6, $7::jsonb)
