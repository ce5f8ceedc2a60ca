-- The fenced finishing write of job_finish and, in the same transaction, a claim of up to $11
-- jobs through docket.claim (see docket.finish_and_claim): the quota path's one round trip per
-- freed slot. Autocommit: docket.claim relies on a fresh snapshot per statement.
-- A claimed job's own timeout is read by primary key (it does not change at claim).
-- $1..$8 as job_finish, $9 text[] queues, $10 text[] kinds, $11 int limit
SELECT f.id, f.claimed, f.state, f.kind, f.queue, f.args, f.attempt, f.max_retries, f.priority, f.unique_key,
       f.queue_latency_s,
       CASE WHEN f.claimed THEN (SELECT extract(epoch FROM t.timeout)::float8 * 1000 FROM docket.jobs t WHERE t.id = f.id)
       END AS timeout_ms
  FROM docket.finish_and_claim($1::uuid, $2::bigint[], $3::int[], $4::text[], $5::float8[], $6::jsonb[], $7::text[],
                               $8::int[], $9::text[], $10::text[], $11::int) f
