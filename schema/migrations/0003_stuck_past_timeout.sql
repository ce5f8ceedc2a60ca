-- 0003_stuck_past_timeout: a running job is stuck when its worker is gone OR it has run past its
-- kind's timeout (plus a minute's grace for the worker's own stop), whatever the worker's
-- liveness: an outcome a live worker failed to write must not hide there.

-- The kind's run timeout, seeded from the workers' config (NULL: not known yet, 30 minutes).
ALTER TABLE docket.kinds ADD COLUMN IF NOT EXISTS timeout interval;

CREATE OR REPLACE VIEW docket.stuck_jobs AS
  SELECT j.id, j.kind, j.queue, j.attempt, j.started_at, j.worker, w.name AS worker_name,
         w.heartbeat_at, now() - w.heartbeat_at AS heartbeat_age,
         CASE WHEN w.id IS NULL THEN 'its worker is unknown'
              WHEN w.dead_at IS NOT NULL OR w.heartbeat_at < now() - w.lease THEN 'its worker is dead (lease expired)'
              ELSE 'running past its timeout (' || coalesce(k.timeout, interval '30 minutes')::text || ')'
         END AS reason
    FROM docket.jobs j
    LEFT JOIN docket.workers w ON w.id = j.worker
    LEFT JOIN docket.kinds k ON k.kind = j.kind
   WHERE j.state = 'running'
     AND (w.id IS NULL OR w.dead_at IS NOT NULL OR w.heartbeat_at < now() - w.lease
          OR j.started_at < now() - coalesce(k.timeout, interval '30 minutes') - interval '1 minute');
