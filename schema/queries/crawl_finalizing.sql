-- The last page is in (docket.crawl_finalizing).
-- $1 bigint crawl, $2 bigint job, $3 uuid worker, $4 int attempt
SELECT docket.crawl_finalizing($1, $2, $3::uuid, $4::int)
