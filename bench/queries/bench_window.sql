-- docket bench: how many jobs of kind $1 completed, and seconds from the first start to the last
-- finish (by the database clock).
-- $1 text kind
SELECT count(*) FILTER (WHERE state = 'completed'),
       extract(epoch FROM max(finished_at) - min(started_at))::float8
  FROM docket.jobs WHERE kind = $1
