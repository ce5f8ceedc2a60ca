-- Clear the cache and mark the crawl done (end of a custom activation transaction).
-- $1 bigint crawl, $2 bigint job
SELECT docket.crawl_done($1, $2)
