-- Delete finished jobs past their kind's retention (docket.kinds, else docket.settings), at most
-- $1 in this call and transaction. A worker calls again at once while full batches come back, so
-- a fleet prunes as fast as it finishes jobs (not $1 per worker per prune_interval).
-- The rule lives in the database, the same for every worker.
SELECT docket.prune($1::int)
