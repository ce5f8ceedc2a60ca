-- docket bench schedules: $1 schedules of kind bench.noop, every 10 minutes, spread over the
-- 10 minutes by name, their first slot 2 s from now: from then on about $1 / 600 come due each
-- second. Written directly: docket.schedule() per row would make the set-up the benchmark.
WITH k AS (INSERT INTO docket.kinds (kind) VALUES ('bench.noop') ON CONFLICT (kind) DO NOTHING RETURNING 1),
     slot AS (SELECT date_trunc('second', now()) + interval '2 s' AS at)
INSERT INTO docket.schedules (name, cron, kind, queue, spread, on_overlap, next_slot, next_run_at)
SELECT 'bench-' || g, '*/10 * * * *', 'bench.noop', 'bench', interval '10 minutes', 'allow', slot.at,
       slot.at + docket.schedule_offset('bench-' || g, interval '10 minutes')
  FROM generate_series(1, $1::int) g, slot
