-- The shrink guard's figures: how many live items of the crawl's collection its activation would
-- remove (keys absent from its cache), out of how many there are.
-- $1 bigint crawl
SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM docket.crawl_cache cc
                                           WHERE cc.crawl_id = $1 AND cc.key = l.key)) AS removed,
       count(*) AS live
  FROM docket.live_items l
 WHERE l.collection = (SELECT c.collection FROM docket.crawls c WHERE c.id = $1)
