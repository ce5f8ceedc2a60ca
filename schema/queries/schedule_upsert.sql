-- Create or update a schedule; the row as JSON (docket.schedule validates every field).
-- $1 name, $2 cron, $3 kind, $4 args jsonb, $5 tz, $6 queue (NULL: default), $7 spread in
-- seconds (NULL: none), $8 on_overlap, $9 on_missed, $10 enabled, $11 priority, $12 max_retries,
-- $13 source
SELECT to_jsonb(s) FROM docket.schedule($1, $2, $3, $4::jsonb, $5, $6,
                                        make_interval(secs => $7::float8), $8, $9, $10::boolean, $11::int,
                                        $12::int, $13) s
