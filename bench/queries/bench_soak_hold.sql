-- docket bench soak: a REPEATABLE READ transaction left open (what a forgotten report or a
-- long pg_dump does): vacuum cannot remove rows deleted after its snapshot until it ends.
-- This session's own idle-in-transaction limit is lifted for it; bench_soak_release ends it.
SET idle_in_transaction_session_timeout = 0; BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM docket.jobs
