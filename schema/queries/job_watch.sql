-- A JobWatch registers the jobs it starts waiting for (finishing one then sends docket_finished)
-- and forgets those it stopped waiting for, in one round trip (migration 0021).
-- $1 uuid watch, $2 bigint[] add, $3 bigint[] drop, $4 bigint milliseconds to hold the new rows
SELECT docket.watch_jobs($1::uuid, $2::bigint[], $3::bigint[], now() + $4::bigint * interval '1 millisecond')
