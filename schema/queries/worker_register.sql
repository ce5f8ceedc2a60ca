-- A worker process start: a fresh id, stamped by the database clock. Its kinds are registered in
-- docket.kinds (seen_at), which strict mode (docket.strict_kinds) checks enqueues against.
-- Written last in a start (after docket.seed_kind has created each kind's row, one row per
-- statement): the heartbeat stamped here is where the lease starts. The kinds' rows are locked in
-- name order, so workers registering together never deadlock (unordered, ten workers inserting
-- the same new kinds at once did).
-- $1 text name, $2 text host, $3 int pid, $4 text[] queues, $5 text[] kinds, $6 int concurrency,
-- $7 float8 lease in seconds
WITH seen AS (
  INSERT INTO docket.kinds AS k (kind, seen_at)
  SELECT DISTINCT u.kind, now() FROM unnest($5::text[]) AS u(kind) ORDER BY u.kind
  ON CONFLICT (kind) DO UPDATE SET seen_at = now())
INSERT INTO docket.workers (name, host, pid, queues, kinds, concurrency, lease)
VALUES ($1, $2, $3::int, $4::text[], $5::text[], $6::int, make_interval(secs => $7::float8))
RETURNING id::text
