-- Take a host's politeness lease: seconds to wait before requesting, or NULL when busy.
-- $1 text host, $2 text holder, $3 uuid the holder's worker, $4 float8 lease seconds
SELECT docket.crawl_host_acquire($1, $2, $3::uuid, $4::float8)
