-- docket bench soak: the soak's jobs not finished yet (a crawl's included).
SELECT count(*) FROM docket.jobs
 WHERE state NOT IN ('completed', 'failed', 'cancelled') AND (queue = 'bench' OR kind LIKE 'bench.%')
