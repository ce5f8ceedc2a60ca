-- A token holder's progress (docket.callback_progress): 'ok' or why it was refused.
-- $1 bigint id, $2 text token hash (hex), $3 jsonb progress
SELECT docket.callback_progress($1::bigint, $2, $3::jsonb)
