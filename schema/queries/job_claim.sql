-- Claim up to $4 runnable jobs for worker $1 from queues $2 of kinds $3 (see docket.claim:
-- priority order, paused queues skipped, per-kind quotas and rates enforced race-free).
-- When the claim comes back short and a rate-limited kind's bucket is empty, one more row with a
-- NULL id carries in its rate_wait_s column the seconds until that bucket has a token
-- (docket.rate_wait): the worker claims again then instead of after a whole poll interval. A job's
-- row has a NULL rate_wait_s.
-- Run in autocommit (READ COMMITTED): docket.claim relies on a fresh snapshot per statement.
-- The job's own timeout is read by primary key (it does not change at claim).
-- $1 uuid worker, $2 text[] queues, $3 text[] kinds, $4 int limit
WITH c AS (
  SELECT * FROM docket.claim($1::uuid, $2::text[], $3::text[], $4::int)
)
SELECT c.id, c.kind, c.queue, c.args::text, c.attempt, c.max_retries, c.priority, c.unique_key,
       docket.seconds_since(greatest(c.run_at, c.inserted_at)) AS queue_latency_s,
       (SELECT extract(epoch FROM t.timeout)::float8 * 1000 FROM docket.jobs t WHERE t.id = c.id) AS timeout_ms,
       NULL::float8 AS rate_wait_s
  FROM c
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, w.wait
  FROM (SELECT docket.rate_wait($3::text[]) AS wait FROM (SELECT count(*) AS n FROM c) x WHERE x.n < $4::int) w
 WHERE w.wait IS NOT NULL
