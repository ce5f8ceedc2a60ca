-- Start or resume a job's crawl (docket.crawl_start); no row: the job is no longer ours.
-- $1 bigint job, $2 uuid worker, $3 int attempt, $4 text kind, $5 text collection, $6 text first URL
SELECT crawl_id, status::text, pages, items, next_url, last_error, duplicate_of
  FROM docket.crawl_start($1, $2::uuid, $3::int, $4, $5, $6)
