-- 0005: what an on-call person looks at first, as views users' own dashboards can read:
-- throughput and timings per kind, live workers with what they run, and waiting work that no
-- live worker can run (a typo'd kind, a queue nobody claims). Every age is computed only from
-- finite timestamps, so a row holding 'infinity' (written by hand) cannot break them.

-- Per kind, over jobs finished in the last hour (the partial jobs_finished_idx walks them by
-- age): completed and failed counts over 5 minutes and the hour, the failure rate, and run and
-- wait time percentiles. Run time: finished_at - started_at of the last attempt; wait time:
-- started_at - run_at, how long it waited to be picked up once it was due.
CREATE VIEW docket.kind_stats AS
  WITH recent AS (
    SELECT j.kind, j.state, j.finished_at,
           CASE WHEN isfinite(j.started_at) AND isfinite(j.finished_at)
                THEN greatest(0, extract(epoch FROM j.finished_at - j.started_at) * 1000) END AS run_ms,
           CASE WHEN isfinite(j.started_at) AND isfinite(j.run_at)
                THEN greatest(0, extract(epoch FROM j.started_at - j.run_at) * 1000) END AS wait_ms
      FROM docket.jobs j
     WHERE j.state IN ('completed', 'failed') AND j.finished_at >= now() - interval '1 hour'
       AND j.finished_at <= now() + interval '1 minute')
  SELECT r.kind,
         count(*) FILTER (WHERE r.state = 'completed' AND r.finished_at >= now() - interval '5 minutes') AS completed_5m,
         count(*) FILTER (WHERE r.state = 'failed' AND r.finished_at >= now() - interval '5 minutes') AS failed_5m,
         count(*) FILTER (WHERE r.state = 'completed') AS completed_1h,
         count(*) FILTER (WHERE r.state = 'failed') AS failed_1h,
         (count(*) FILTER (WHERE r.state = 'failed'))::float8 / greatest(count(*), 1) AS failure_rate_1h,
         (percentile_cont(0.5) WITHIN GROUP (ORDER BY r.run_ms))::float8 AS run_p50_ms,
         (percentile_cont(0.95) WITHIN GROUP (ORDER BY r.run_ms))::float8 AS run_p95_ms,
         (percentile_cont(0.5) WITHIN GROUP (ORDER BY r.wait_ms))::float8 AS wait_p50_ms,
         (percentile_cont(0.95) WITHIN GROUP (ORDER BY r.wait_ms))::float8 AS wait_p95_ms
    FROM recent r
   GROUP BY r.kind;

-- Live workers, now with the kinds they run (columns may only be added at the end).
CREATE OR REPLACE VIEW docket.live_workers AS
  SELECT w.id, w.name, w.host, w.pid, w.queues, w.concurrency, w.started_at, w.heartbeat_at,
         now() - w.heartbeat_at AS heartbeat_age, w.stopping_at IS NOT NULL AS stopping,
         (SELECT count(*) FROM docket.jobs j WHERE j.state = 'running' AND j.worker = w.id) AS running,
         w.kinds
    FROM docket.workers w
   WHERE w.dead_at IS NULL AND w.heartbeat_at >= now() - w.lease;

-- Waiting jobs (available, scheduled, retryable) that no live worker can run: no live worker
-- runs the kind, or none that does claims the queue. `due` counts those that could run now;
-- oldest_due_age_s is how long the oldest of them has been due. Each branch of the UNION
-- matches one partial index, so the view reads the waiting rows only, never finished history.
CREATE VIEW docket.unserved_jobs AS
  WITH waiting AS (
    SELECT j.queue, j.kind, j.run_at FROM docket.jobs j WHERE j.state = 'available'
    UNION ALL
    SELECT j.queue, j.kind, j.run_at FROM docket.jobs j WHERE j.state IN ('scheduled', 'retryable')),
  live AS (
    SELECT w.queues, w.kinds FROM docket.workers w
     WHERE w.dead_at IS NULL AND w.heartbeat_at >= now() - w.lease),
  grouped AS (
    SELECT wt.queue, wt.kind, count(*) AS jobs, count(*) FILTER (WHERE wt.run_at <= now()) AS due,
           min(wt.run_at) FILTER (WHERE wt.run_at <= now() AND isfinite(wt.run_at)) AS oldest_due_at
      FROM waiting wt GROUP BY wt.queue, wt.kind)
  SELECT g.queue, g.kind, g.jobs, g.due,
         extract(epoch FROM now() - g.oldest_due_at)::float8 AS oldest_due_age_s,
         CASE WHEN NOT EXISTS (SELECT 1 FROM live l WHERE g.kind = ANY (l.kinds))
                THEN 'no live worker runs kind ' || g.kind
              WHEN NOT EXISTS (SELECT 1 FROM live l WHERE g.queue = ANY (l.queues))
                THEN 'no live worker claims queue ' || g.queue
              ELSE 'no live worker runs kind ' || g.kind || ' in queue ' || g.queue END AS reason
    FROM grouped g
   WHERE NOT EXISTS (SELECT 1 FROM live l WHERE g.kind = ANY (l.kinds) AND g.queue = ANY (l.queues));

-- Per queue, as before, but read from the waiting and running rows only (each branch matches a
-- partial index): the 0001 view listed queue names with a DISTINCT over every job, finished
-- history included, a sequential scan that grew with retention. A queue now appears while it has
-- unfinished jobs, a live worker claims from it, or it has a row in docket.queues (ever paused).
CREATE OR REPLACE VIEW docket.queue_summary AS
  WITH unfinished AS (
    SELECT j.queue, 1 AS available, 0 AS running, 0 AS waiting, j.run_at FROM docket.jobs j WHERE j.state = 'available'
    UNION ALL
    SELECT j.queue, 0, 1, 0, NULL FROM docket.jobs j WHERE j.state = 'running'
    UNION ALL
    SELECT j.queue, 0, 0, 1, NULL FROM docket.jobs j WHERE j.state IN ('scheduled', 'retryable')),
  per_queue AS (
    SELECT u.queue, sum(u.available)::bigint AS available, sum(u.running)::bigint AS running,
           sum(u.waiting)::bigint AS waiting, min(u.run_at) FILTER (WHERE isfinite(u.run_at)) AS oldest_available_at
      FROM unfinished u GROUP BY u.queue),
  names AS (
    SELECT p.queue FROM per_queue p
    UNION SELECT q.name FROM docket.queues q
    UNION SELECT unnest(w.queues) FROM docket.workers w WHERE w.dead_at IS NULL AND w.heartbeat_at >= now() - w.lease)
  SELECT n.queue, coalesce(p.available, 0) AS available,
         coalesce(p.running, 0) AS running, coalesce(p.waiting, 0) AS waiting, p.oldest_available_at,
         -- (greatest() ignores a NULL: no available job must stay NULL, not 0)
         CASE WHEN p.oldest_available_at IS NOT NULL
              THEN greatest(0, extract(epoch FROM now() - p.oldest_available_at))::float8 END AS oldest_available_age_s,
         q.paused_at IS NOT NULL AS paused
    FROM names n LEFT JOIN per_queue p ON p.queue = n.queue LEFT JOIN docket.queues q ON q.name = n.queue;

-- The roles of 0004 read the new views (and keep their grants on the replaced ones).
SELECT docket.apply_security();
