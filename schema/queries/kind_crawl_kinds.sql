-- What decides whether a bulk enqueue may take the COPY path: the kinds that crawl (their enqueue
-- must go through docket.enqueue_many: dedup, crawl row), the kinds with a default queue, the kinds
-- that derive unique keys (unique_by), and strict mode (docket.enqueue_many checks the kinds). One
-- row per such kind; kind NULL in a row of its own when strict mode is on.
SELECT k.kind FROM docket.kinds k WHERE k.crawl_collection IS NOT NULL OR k.queue IS NOT NULL OR k.unique_by IS NOT NULL
UNION ALL
SELECT NULL WHERE docket.strict_kinds()
