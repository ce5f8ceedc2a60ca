-- Lock the job's row and say whether it is still ours (start of a custom activation transaction).
-- $1 bigint job, $2 uuid worker, $3 int attempt
SELECT docket.crawl_owns($1, $2::uuid, $3::int)
