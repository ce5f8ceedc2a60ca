-- Store one page and advance the checkpoint (docket.crawl_page); no row: the job is no longer ours.
-- $1 bigint crawl, $2 bigint job, $3 uuid worker, $4 int attempt, $5 jsonb [{key, item}],
-- $6 text next URL (NULL: last page), $7 text cursor
SELECT pages, items FROM docket.crawl_page($1, $2, $3::uuid, $4::int, $5::jsonb, $6, $7)
