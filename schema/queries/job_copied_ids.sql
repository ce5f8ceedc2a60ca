-- After a COPY of jobs in this transaction: their ids, in insertion (= input) order. The rows
-- this transaction inserted carry its xid; the primary key range from the floor keeps it cheap.
-- $1 bigint floor (from job_copy_floor)
SELECT id FROM docket.jobs
 WHERE id > $1 AND xmin::text::bigint = (txid_current() & 4294967295)
 ORDER BY id
