-- Fail crawls whose job ended without finishing them (docket.crawl_sweep).
SELECT docket.crawl_sweep()
