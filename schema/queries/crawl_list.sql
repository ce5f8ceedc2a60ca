-- Crawls newest first, optionally filtered; keyset pagination on id.
-- $1 text collection, $2 text status, $3 bigint after, $4 int limit
SELECT (to_jsonb(c) || jsonb_build_object('job_state', j.state, 'attempt', j.attempt))::text
  FROM docket.crawls c LEFT JOIN docket.jobs j ON j.id = c.job_id
 WHERE ($1::text IS NULL OR c.collection = $1)
   AND ($2::docket.crawl_status IS NULL OR c.status = $2::docket.crawl_status)
   AND ($3::bigint IS NULL OR c.id < $3)
 ORDER BY c.id DESC
 LIMIT $4
