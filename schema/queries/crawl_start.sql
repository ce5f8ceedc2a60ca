-- Start or resume a job's crawl (docket.crawl_start); no row: the job is no longer ours. The
-- collection is the crawl row's (evaluated at enqueue); a job enqueued before its kind crawled gets
-- the template evaluated on its args now (22023 naming args.NAME when they do not fit it).
-- $1 bigint job, $2 uuid worker, $3 int attempt, $4 text kind, $5 text collection template
-- (crawl.collection, may hold {args.NAME}), $6 text first URL
WITH c AS (
  SELECT CASE WHEN EXISTS (SELECT 1 FROM docket.crawls c WHERE c.job_id = $1)
              THEN (SELECT c.collection FROM docket.crawls c WHERE c.job_id = $1)
              ELSE (SELECT docket.crawl_collection_for($5, j.args) FROM docket.jobs j WHERE j.id = $1) END
           AS collection)
SELECT s.crawl_id, s.status::text, s.pages, s.items, s.next_url, s.last_error, s.duplicate_of, c.collection
  FROM c, docket.crawl_start($1, $2::uuid, $3::int, $4, c.collection, $6) s
