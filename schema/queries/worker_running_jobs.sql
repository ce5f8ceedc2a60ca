-- The jobs the database has running under worker $1. After a claim whose answer was lost (the
-- connection broke around its commit), a worker compares them with the jobs it holds: one it
-- does not hold was claimed by that lost claim and is handed back (worker.cpp, reconcile).
-- Jobs parked for their callback are held by no process (as in docket.rescue) and are left out.
-- Through jobs_running_idx (state = 'running'): as many rows as jobs run now.
-- $1 uuid worker
SELECT j.id, j.attempt, j.kind, j.queue, docket.max_retries_of(j.max_retries, j.kind) AS max_retries
  FROM docket.jobs j
 WHERE j.state = 'running' AND j.worker = $1::uuid
   AND NOT (j.callback_deadline IS NOT NULL AND j.callback_run IS NOT DISTINCT FROM j.started_at)
