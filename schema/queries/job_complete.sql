-- Completions without a result, batched: the hot path of the finishing write, fenced like
-- job_finish (running, held by this worker, at this attempt). Completion wins over a pending
-- cancel request there too, so no other column decides the state.
-- Each item is found by primary key and locked in a LATERAL probe, then updated by its row
-- address: one index probe per item whatever the statistics say (see jobs_running_idx).
-- $1 uuid worker, $2 bigint[] ids, $3 int[] attempts
UPDATE docket.jobs j
   SET state = 'completed', finished_at = now()
  FROM unnest($2::bigint[], $3::int[]) AS u(id, attempt)
 CROSS JOIN LATERAL (
       SELECT k.ctid AS row FROM docket.jobs k
        WHERE k.id = u.id AND k.state IS NOT DISTINCT FROM 'running' AND k.worker = $1::uuid
          AND k.attempt = u.attempt
          FOR UPDATE) k
 WHERE j.ctid = k.row
RETURNING j.id
