-- Release a host's lease; the next request to it waits $3 seconds at least.
-- $1 text host, $2 text holder, $3 float8 gap seconds
SELECT docket.crawl_host_release($1, $2, $3::float8)
