-- Jobs newest first, optionally filtered; keyset pagination on id. A key filter walks
-- jobs_key_idx (0011), so "the jobs made with key K" reads only those rows, finished ones too.
-- $1 text kind, $2 text queue, $3 text state, $4 bigint after (last id of the previous page), $5 int limit,
-- $6 text unique_key
SELECT docket.job_json(j)::text
  FROM docket.jobs j
 WHERE ($1::text IS NULL OR j.kind = $1)
   AND ($2::text IS NULL OR j.queue = $2)
   AND ($3::docket.job_state IS NULL OR j.state = $3::docket.job_state)
   AND ($4::bigint IS NULL OR j.id < $4)
   AND ($6::text IS NULL OR j.unique_key = $6)
 ORDER BY j.id DESC
 LIMIT $5
