-- docket bench rate: of kind $1's jobs, how many started in the $2 seconds from the first start,
-- and the most that started in any window of $3 seconds (from each start on; database clock).
-- $1 text kind, $2 float8 seconds measured, $3 float8 the rate's period in seconds
WITH s AS (SELECT j.started_at FROM docket.jobs j WHERE j.kind = $1 AND j.started_at IS NOT NULL),
f AS (SELECT min(s.started_at) AS t0 FROM s)
SELECT (SELECT count(*) FROM s, f WHERE s.started_at < f.t0 + make_interval(secs => $2::float8)),
       (SELECT max(w.n) FROM (
          SELECT count(*) OVER (ORDER BY s.started_at
                                RANGE BETWEEN CURRENT ROW AND make_interval(secs => $3::float8) FOLLOWING) AS n
            FROM s) w)
