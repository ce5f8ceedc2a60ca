-- A worker's config seeds its kinds' settings: a NULL leaves the stored value as it is.
-- $1 text kind, $2 int max_retries, $3 int max_running, $4 text crawl collection (crawl kinds),
-- $5 float8 the kind's run timeout in seconds (docket.stuck_jobs)
INSERT INTO docket.kinds AS k (kind, max_retries, max_running, crawl_collection, timeout)
VALUES ($1, $2::int, $3::int, $4, make_interval(secs => $5::float8))
ON CONFLICT (kind) DO UPDATE
   SET max_retries = coalesce(excluded.max_retries, k.max_retries),
       max_running = coalesce(excluded.max_running, k.max_running),
       crawl_collection = coalesce(excluded.crawl_collection, k.crawl_collection),
       timeout = coalesce(excluded.timeout, k.timeout),
       updated_at = now()
