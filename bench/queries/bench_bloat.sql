-- docket bench bloat: $1 finished rows (retained, not pruned) and $2 rows scheduled a day ahead.
-- $1 int finished, $2 int scheduled
WITH done AS (
  INSERT INTO docket.jobs (kind, queue, state, attempt, started_at, finished_at, worker)
  SELECT 'bench.done', 'bench', 'completed', 1, now(), now(), gen_random_uuid() FROM generate_series(1, $1::int)
  RETURNING 1)
INSERT INTO docket.jobs (kind, queue, state, run_at)
SELECT 'bench.later', 'bench', 'scheduled', now() + interval '1 day' FROM generate_series(1, $2::int)
