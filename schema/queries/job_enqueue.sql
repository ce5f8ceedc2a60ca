-- Enqueue one job (docket.enqueue_job: validation, unique_key dedup, the kind's default queue and
-- derived unique key), and why no live worker would run it (NULL: one would) for the caller's warning.
-- $1 text kind, $2 jsonb args, $3 text queue (NULL: the kind's queue, else default), $4 int priority,
-- $5 timestamptz run_at (NULL: now), $6 int max_retries (NULL: the kind's default), $7 text unique_key,
-- $8 interval timeout (NULL: the kind's), $9 interval unique_for, $10 text[] unique_states,
-- $11 interval result_ttl (NULL: the kind's)
SELECT e.id, e.created, docket.unserved_reason($1, $3) AS unserved
  FROM docket.enqueue_job($1, $2::jsonb, $3, $4::int, $5::timestamptz, $6::int, $7, $8::interval, $9::interval,
                          $10::text[], $11::interval) e
