-- docket bench soak, at the end: in one snapshot, the soak's jobs (crawls aside) finished since
-- $1 (the last sample's end, which left its final 10 s to this count) and those not finished.
-- enqueued = every sample's finishes + these two, or a job was lost.
-- $1 float8 since (epoch seconds, database clock)
SELECT count(*) FILTER (WHERE state IN ('completed', 'failed', 'cancelled') AND finished_at >= to_timestamp($1::float8)),
       count(*) FILTER (WHERE state NOT IN ('completed', 'failed', 'cancelled'))
  FROM docket.jobs
 WHERE kind IN ('bench.noop', 'bench.soak_flaky', 'bench.soak_quota')
