-- The one fenced finishing write, batched: each item applies only if the job is still running,
-- held by this worker, at the same attempt. A worker that lost the job (rescued, cancelled and
-- re-run) changes nothing. Returns the items that applied with the state they reached.
-- $1 uuid worker, $2 bigint[] ids, $3 int[] attempts, $4 text[] outcomes
-- (complete|retry|fail|cancel|snooze|release), $5 float8[] delays in seconds (retry, snooze),
-- $6 jsonb[] results (complete), $7 text[] errors (recorded with the attempt and time),
-- $8 int[] max_retries the job ran with (as claimed): a retry past it fails the job
UPDATE docket.jobs j
   SET state = docket.next_state(u.outcome, j.attempt, u.max_retries, j.cancel_requested_at IS NOT NULL),
       finished_at = CASE WHEN docket.next_state(u.outcome, j.attempt, u.max_retries, j.cancel_requested_at IS NOT NULL)
                               IN ('completed', 'failed', 'cancelled') THEN now() END,
       run_at = CASE WHEN u.outcome IN ('retry', 'snooze') THEN now() + make_interval(secs => u.delay)
                     WHEN u.outcome = 'release' THEN now()
                     ELSE j.run_at END,
       attempt = CASE WHEN u.outcome IN ('snooze', 'release') THEN j.attempt - 1 ELSE j.attempt END,
       result = CASE WHEN u.outcome = 'complete' THEN u.result ELSE j.result END,
       errors = CASE WHEN u.error IS NULL THEN j.errors
                     ELSE j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', now(),
                                                                           'error', u.error)) END
  FROM unnest($2::bigint[], $3::int[], $4::text[], $5::float8[], $6::jsonb[], $7::text[], $8::int[])
       AS u(id, attempt, outcome, delay, result, error, max_retries)
 WHERE j.id = u.id AND j.state = 'running' AND j.worker = $1::uuid AND j.attempt = u.attempt
RETURNING j.id, j.state::text
