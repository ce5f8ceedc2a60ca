-- A worker process start: a fresh id, stamped by the database clock.
-- $1 text name, $2 text host, $3 int pid, $4 text[] queues, $5 text[] kinds, $6 int concurrency,
-- $7 float8 lease in seconds
INSERT INTO docket.workers (name, host, pid, queues, kinds, concurrency, lease)
VALUES ($1, $2, $3::int, $4::text[], $5::text[], $6::int, make_interval(secs => $7::float8))
RETURNING id::text
