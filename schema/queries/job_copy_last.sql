-- After a COPY of jobs: the last id this session drew from the sequence. When it is exactly the
-- floor plus the number of rows, no other session drew ids meanwhile, so the copied rows hold
-- floor+1 .. last in input order and need no read-back (job_copied_ids is the fallback).
SELECT currval(pg_get_serial_sequence('docket.jobs', 'id'))
