-- docket bench soak: one sample. The window is [$1, now() - 10 s): a finishing transaction stamps
-- finished_at when it starts and becomes visible when it commits, so the last 10 s are left to
-- the next sample, which starts where this one ended (returned first): every finish is counted
-- exactly once. Finished bench jobs are kept 5 minutes, longer than the window and its lag.
-- $1 float8 window start (epoch seconds, database clock)
WITH w AS (SELECT to_timestamp($1::float8) AS since, now() - interval '10 seconds' AS until),
done AS (
  SELECT j.kind, j.state, j.started_at - j.inserted_at AS wait
    FROM docket.jobs j, w
   WHERE j.kind IN ('bench.noop', 'bench.soak_flaky', 'bench.soak_quota')
     AND j.finished_at >= w.since AND j.finished_at < w.until)
SELECT extract(epoch FROM (SELECT until FROM w))::float8 AS until,
       (SELECT count(*) FROM done WHERE state = 'completed') AS completed,
       (SELECT count(*) FROM done WHERE state = 'failed') AS failed,
       (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM wait) * 1000)
          FROM done WHERE kind = 'bench.noop') AS wait_p50_ms,
       (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM wait) * 1000)
          FROM done WHERE kind = 'bench.noop') AS wait_p99_ms,
       pg_table_size('docket.jobs') AS table_bytes,
       pg_indexes_size('docket.jobs') AS index_bytes,
       (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'docket.jobs'::regclass) AS dead_rows,
       (SELECT coalesce(max(age(backend_xmin)), 0) FROM pg_stat_activity) AS xmin_age,
       (SELECT count(*) FROM docket.jobs WHERE state NOT IN ('completed', 'failed', 'cancelled')
           AND kind IN ('bench.noop', 'bench.soak_flaky', 'bench.soak_quota')) AS unfinished,
       (SELECT count(*) FROM docket.crawls WHERE kind = 'bench.soak_crawl' AND status = 'done') AS crawls_done
