-- The claim when no quota is involved, in one statement: no PL/pgSQL, so an idle worker's wake-up
-- costs one short round trip. Paused queues are skipped here. If any of the kinds is limited (a
-- quota, a rate or a partition: docket.kind_limited, which docket.claim asks too) the statement
-- claims nothing and returns one row with a NULL id instead: the caller then claims through
-- docket.claim, which takes the quota locks. (Deciding inside the statement means a limit set
-- meanwhile is never missed by a stale cache.)
-- The waiting jobs are read as in docket.claim_from (migration 0025): one ordered stretch of the
-- claim index per (queue, kind), a stream; with several streams a first read without locks finds
-- each one's share of the best $4 jobs and each stream locks only its share, so a claim locks at
-- most $4 jobs and never steps over other kinds' waiting jobs.
-- The producer session turns sequential and bitmap scans off so its cached plan stays this one;
-- the update finds its rows by `id = ANY(array)` so that plan cannot join by walking the table.
-- $1 uuid worker, $2 text[] queues, $3 text[] kinds, $4 int limit
WITH limited AS (
  SELECT 1 FROM docket.kinds k
   WHERE k.kind = ANY ($3::text[]) AND docket.kind_limited(k)
   LIMIT 1
),
streams AS (
  SELECT q.name, w.kind FROM unnest($2::text[]) AS q(name)
  CROSS JOIN (SELECT DISTINCT u.kind FROM unnest($3::text[]) AS u(kind)) AS w
   WHERE NOT EXISTS (SELECT 1 FROM docket.queues p WHERE p.name = q.name AND p.paused_at IS NOT NULL)
     AND NOT EXISTS (SELECT 1 FROM limited)
),
ahead AS (
  SELECT x.name, x.kind FROM streams s
  CROSS JOIN LATERAL (
    SELECT s.name, s.kind, j.priority, j.run_at, j.id FROM docket.jobs j
     WHERE j.state = 'available' AND j.queue = s.name AND j.kind = s.kind
     ORDER BY j.priority, j.run_at, j.id
     LIMIT $4::int) x
  ORDER BY x.priority, x.run_at, x.id
  LIMIT $4::int
),
shares AS (
  SELECT s.name, s.kind, $4::bigint AS n FROM streams s WHERE (SELECT count(*) FROM streams) = 1
  UNION ALL
  SELECT a.name, a.kind, count(*) FROM ahead a WHERE (SELECT count(*) FROM streams) > 1 GROUP BY a.name, a.kind
),
c AS (
  SELECT x.id FROM shares s
  CROSS JOIN LATERAL (
    SELECT j.id FROM docket.jobs j
     WHERE j.state = 'available' AND j.queue = s.name AND j.kind = s.kind
     ORDER BY j.priority, j.run_at, j.id
     LIMIT s.n
     FOR UPDATE SKIP LOCKED) x
  LIMIT $4::int  -- (the shares add up to at most $4: this bounds the generic plan's estimate, which
                 -- passed jit_above_cost without it, and compiling cost 30 ms per claim)
),
claimed AS (
  UPDATE docket.jobs j
     SET state = 'running', attempt = j.attempt + 1, started_at = now(), worker = $1::uuid
   WHERE j.id = ANY (ARRAY(SELECT c.id FROM c))
  RETURNING j.id, j.kind, j.queue, j.args::text AS args, j.attempt, j.max_retries, j.priority, j.unique_key,
            docket.seconds_since(greatest(j.run_at, j.inserted_at)) AS queue_latency_s,
            extract(epoch FROM j.timeout)::float8 * 1000 AS timeout_ms
)
SELECT c.id, c.kind, c.queue, c.args, c.attempt, coalesce(c.max_retries, k.max_retries, 20) AS max_retries, c.priority,
       c.unique_key, c.queue_latency_s, c.timeout_ms
  FROM claimed c LEFT JOIN docket.kinds k ON k.kind = c.kind
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE EXISTS (SELECT 1 FROM limited)
