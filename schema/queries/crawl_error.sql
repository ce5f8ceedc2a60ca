-- Record a page error; $6 true fails the crawl and drops its cache (docket.crawl_error).
-- $1 bigint crawl, $2 bigint job, $3 uuid worker, $4 int attempt, $5 text error, $6 boolean final
SELECT docket.crawl_error($1, $2, $3::uuid, $4::int, $5, $6::boolean)
