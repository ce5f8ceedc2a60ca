-- docket bench soak: the soak's jobs not finished yet (crawls aside).
SELECT count(*) FROM docket.jobs
 WHERE state NOT IN ('completed', 'failed', 'cancelled') AND kind IN ('bench.noop', 'bench.soak_flaky', 'bench.soak_quota')
