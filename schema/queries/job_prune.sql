-- Delete finished jobs past their retention.
-- $1 float8 seconds to keep completed jobs, $2 float8 seconds to keep failed/cancelled jobs
SELECT docket.prune(make_interval(secs => $1::float8), make_interval(secs => $2::float8))
