-- The claim when no quota is involved, in one statement: no PL/pgSQL, so an idle worker's wake-up
-- costs one short round trip. Paused queues are skipped here. If any of the kinds is limited (a
-- quota, a rate or a partition: docket.kind_limited, which docket.claim asks too) the statement
-- claims nothing and returns one row with a NULL id instead: the caller then claims through
-- docket.claim, which takes the quota locks. (Deciding inside the statement means a limit set
-- meanwhile is never missed by a stale cache.)
-- Each queue is read through its own ordered scan of the partial claim index (see claim_from).
-- The producer session turns sequential and bitmap scans off so its cached plan stays this one;
-- the update finds its rows by `id = ANY(array)` so that plan cannot join by walking the table.
-- $1 uuid worker, $2 text[] queues, $3 text[] kinds, $4 int limit
WITH limited AS (
  SELECT 1 FROM docket.kinds k
   WHERE k.kind = ANY ($3::text[]) AND docket.kind_limited(k)
   LIMIT 1
),
open_queues AS (
  SELECT q.name FROM unnest($2::text[]) AS q(name)
   WHERE NOT EXISTS (SELECT 1 FROM docket.queues p WHERE p.name = q.name AND p.paused_at IS NOT NULL)
     AND NOT EXISTS (SELECT 1 FROM limited)
),
c AS (
  SELECT x.id FROM open_queues q
  CROSS JOIN LATERAL (
    SELECT j.id, j.priority, j.run_at FROM docket.jobs j
     WHERE j.state = 'available' AND j.queue = q.name AND j.kind = ANY ($3::text[])
     ORDER BY j.priority, j.run_at, j.id
     LIMIT $4::int
     FOR UPDATE SKIP LOCKED) x
  ORDER BY x.priority, x.run_at, x.id
  LIMIT $4::int
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
