-- The kinds that crawl (their enqueue must go through docket.enqueue_many: dedup, crawl row).
SELECT kind FROM docket.kinds WHERE crawl_collection IS NOT NULL
