-- Record a running job's progress; fenced like every finishing write.
-- $1 uuid worker, $2 bigint id, $3 int attempt, $4 jsonb progress
UPDATE docket.jobs
   SET progress = $4::jsonb
 WHERE id = $2  -- by primary key, see jobs_running_idx
   AND state IS NOT DISTINCT FROM 'running' AND worker = $1::uuid AND attempt = $3
