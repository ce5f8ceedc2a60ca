-- Replace the collection in docket.live_items with the cache, in one transaction (docket.crawl_activate).
-- $1 bigint crawl, $2 bigint job, $3 uuid worker, $4 int attempt
SELECT docket.crawl_activate($1, $2, $3::uuid, $4::int)
