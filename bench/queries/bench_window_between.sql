-- docket bench steady: jobs of kind $1 finished between $2 and $3 seconds after the epoch.
-- $1 text kind, $2 float8 from, $3 float8 to
SELECT count(*) FROM docket.jobs
 WHERE kind = $1 AND state = 'completed'
   AND finished_at >= to_timestamp($2::float8) AND finished_at < to_timestamp($3::float8)
