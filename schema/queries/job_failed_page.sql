-- A page of a kind's failed jobs, oldest failure first, for "retry all failed of a kind": the
-- caller retries each (one docket.retry per job, so one that cannot be retried is skipped, not
-- fatal to the rest) and passes the last row back as the cursor. Keyset on (finished_at, id) over
-- the partial jobs_finished_idx (state, finished_at); finished_at travels as integer microseconds
-- since the epoch, so the cursor is exact and holds digits only.
-- $1 text kind, $2 bigint after finished_at in µs (NULL: from the start), $3 bigint after id, $4 int limit
SELECT j.id, (extract(epoch FROM j.finished_at) * 1000000)::bigint AS finished_us
  FROM docket.jobs j
 WHERE j.state = 'failed' AND j.kind = $1
   AND ($2::bigint IS NULL
        OR (j.finished_at >= 'epoch'::timestamptz + $2::bigint * interval '1 microsecond'
            AND (j.finished_at, j.id) > ('epoch'::timestamptz + $2::bigint * interval '1 microsecond', $3::bigint)))
 ORDER BY j.finished_at, j.id
 LIMIT $4
