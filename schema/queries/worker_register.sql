-- A worker process start: a fresh id, stamped by the database clock. Written last in a start, after
-- the worker's kinds are seeded (docket.seed_kind marks each kind seen, which strict mode,
-- docket.strict_kinds, checks enqueues against): the heartbeat stamped here is the lease's start.
-- Touches no docket.kinds row: a multi-row upsert of the kinds here deadlocked workers starting
-- together (each inserting the same new kinds).
-- $1 text name, $2 text host, $3 int pid, $4 text[] queues, $5 text[] kinds, $6 int concurrency,
-- $7 float8 lease in seconds
INSERT INTO docket.workers (name, host, pid, queues, kinds, concurrency, lease)
VALUES ($1, $2, $3::int, $4::text[], $5::text[], $6::int, make_interval(secs => $7::float8))
RETURNING id::text
