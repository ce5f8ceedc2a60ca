-- A worker about to sleep with free slots marks its queues so the next enqueue into one of them
-- sends docket_jobs (migration 0021); true: an available job is already there, claim again.
-- $1 text[] queues, $2 text[] kinds
SELECT docket.listen_for_jobs($1::text[], $2::text[])
