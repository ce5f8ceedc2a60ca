-- Bulk enqueue (docket.enqueue_many): results in input order.
-- $1 jsonb array of {kind, args, queue, priority, run_at, max_retries, unique_key, timeout,
--    unique_for, unique_states, result_ttl}
SELECT e.id, e.created FROM docket.enqueue_many($1::jsonb) e
