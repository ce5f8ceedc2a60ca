-- Completions without a result, batched: the hot path of the finishing write, fenced like
-- job_finish (running, held by this worker, at this attempt). Completion wins over a pending
-- cancel request there too, so no other column decides the state.
-- $1 uuid worker, $2 bigint[] ids, $3 int[] attempts
UPDATE docket.jobs j
   SET state = 'completed', finished_at = now()
  FROM unnest($2::bigint[], $3::int[]) AS u(id, attempt)
 WHERE j.id = u.id AND j.state = 'running' AND j.worker = $1::uuid AND j.attempt = u.attempt
RETURNING j.id
