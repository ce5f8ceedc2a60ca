-- A worker's config seeds its kinds' settings: a NULL leaves the stored value as it is. The TOML
-- max_running is stored as config_max_running and becomes the quota only when no operator set one
-- (limit_source 'operator' holds until docket.reset_limit). Returns the quota before and after,
-- and its source, so the worker logs every change it makes and every TOML value it does not apply.
-- $1 text kind, $2 int max_retries, $3 int max_running, $4 text crawl collection (crawl kinds),
-- $5 float8 the kind's run timeout in seconds (docket.stuck_jobs), $6 text default queue,
-- $7 float8 seconds to keep completed jobs, $8 float8 seconds to keep failed/cancelled jobs
WITH prev AS (SELECT k.max_running FROM docket.kinds k WHERE k.kind = $1),
up AS (
  INSERT INTO docket.kinds AS k (kind, max_retries, max_running, config_max_running, limit_source, crawl_collection,
                                 timeout, queue, retain_completed, retain_failed, seen_at)
  VALUES ($1, $2::int, $3::int, $3::int, CASE WHEN $3::int IS NOT NULL THEN 'config' END, $4,
          make_interval(secs => $5::float8), $6, make_interval(secs => $7::float8), make_interval(secs => $8::float8), now())
  ON CONFLICT (kind) DO UPDATE
     SET max_retries = coalesce(excluded.max_retries, k.max_retries),
         config_max_running = coalesce(excluded.config_max_running, k.config_max_running),
         max_running = CASE WHEN k.limit_source = 'operator' THEN k.max_running
                            ELSE coalesce(excluded.max_running, k.max_running) END,
         limit_source = CASE WHEN k.limit_source = 'operator' THEN k.limit_source
                             WHEN excluded.max_running IS NOT NULL THEN 'config' ELSE k.limit_source END,
         crawl_collection = coalesce(excluded.crawl_collection, k.crawl_collection),
         timeout = coalesce(excluded.timeout, k.timeout),
         queue = coalesce(excluded.queue, k.queue),
         retain_completed = coalesce(excluded.retain_completed, k.retain_completed),
         retain_failed = coalesce(excluded.retain_failed, k.retain_failed),
         seen_at = now(),
         updated_at = now()
  RETURNING k.max_running, k.limit_source, k.config_max_running)
SELECT (SELECT p.max_running FROM prev p) AS max_running_before, up.max_running, up.limit_source,
       up.config_max_running, EXISTS (SELECT 1 FROM prev) AS existed FROM up
