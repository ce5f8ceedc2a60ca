-- Bulk enqueue returning each job as JSON, in input order (docket.enqueue_many_jobs), and why no
-- live worker would run it (NULL: one would) for the caller's warning.
-- $1 jsonb array of {kind, args, queue, priority, run_at, max_retries, unique_key, timeout,
--    unique_for, unique_states, result_ttl}
SELECT e.id, e.created, e.job::text AS job, docket.unserved_reason(e.job ->> 'kind', e.job ->> 'queue') AS unserved
  FROM docket.enqueue_many_jobs($1::jsonb) e
