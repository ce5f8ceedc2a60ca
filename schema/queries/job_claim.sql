-- Claim up to $4 runnable jobs for worker $1 from queues $2 of kinds $3 (see docket.claim:
-- priority order, paused queues skipped, per-kind quotas enforced race-free).
-- Run in autocommit (READ COMMITTED): docket.claim relies on a fresh snapshot per statement.
-- The job's own timeout is read by primary key (it does not change at claim).
-- $1 uuid worker, $2 text[] queues, $3 text[] kinds, $4 int limit
SELECT c.id, c.kind, c.queue, c.args::text, c.attempt, c.max_retries, c.priority, c.unique_key,
       docket.seconds_since(greatest(c.run_at, c.inserted_at)) AS queue_latency_s,
       (SELECT extract(epoch FROM t.timeout)::float8 * 1000 FROM docket.jobs t WHERE t.id = c.id) AS timeout_ms
  FROM docket.claim($1::uuid, $2::text[], $3::text[], $4::int) c
