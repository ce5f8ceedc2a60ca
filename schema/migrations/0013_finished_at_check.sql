-- 0013_finished_at_check: the database states which job states carry finished_at. Every SQL path
-- already stamps it when a job finishes (completed, failed, cancelled) and clears it when a job
-- comes back (retry, rescue back to available, snooze); the quota-free claim
-- (schema/queries/job_claim_open.sql) leaves it alone because an available job has none, which is
-- now a rule rather than a hope. docket::is_finished() in C++ names the same three states
-- (Lifecycle tests).
--
-- Rows written by hand or by an older bug are mended first, so the migration never fails on data:
-- a finished job without a time gets its last known time, an unfinished one loses a stale stamp.
UPDATE docket.jobs
   SET finished_at = greatest(coalesce(started_at, inserted_at), inserted_at)
 WHERE state IN ('completed', 'failed', 'cancelled') AND finished_at IS NULL;
UPDATE docket.jobs
   SET finished_at = NULL
 WHERE state NOT IN ('completed', 'failed', 'cancelled') AND finished_at IS NOT NULL;

-- NOT VALID then VALIDATE. Both run in this migration's one transaction, so the ACCESS EXCLUSIVE
-- lock of ADD CONSTRAINT is held while VALIDATE reads the table: on a large jobs table the
-- upgrade stops enqueues and claims for that scan.
ALTER TABLE docket.jobs
  ADD CONSTRAINT jobs_finished_at_check
  CHECK ((finished_at IS NOT NULL) = (state IN ('completed', 'failed', 'cancelled'))) NOT VALID;
ALTER TABLE docket.jobs VALIDATE CONSTRAINT jobs_finished_at_check;
