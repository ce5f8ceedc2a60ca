-- The one fenced finishing write, batched (see docket.finish_and_claim): returns the items that
-- applied with the state they reached.
-- $1 uuid worker, $2 bigint[] ids, $3 int[] attempts, $4 text[] outcomes
-- (complete|retry|fail|cancel|snooze|release), $5 float8[] delays in seconds (retry, snooze),
-- $6 jsonb[] results (complete), $7 text[] errors, $8 int[] max_retries the jobs ran with
SELECT f.id, f.state
  FROM docket.finish_and_claim($1::uuid, $2::bigint[], $3::int[], $4::text[], $5::float8[], $6::jsonb[], $7::text[],
                               $8::int[], NULL, NULL, 0) f
