-- Running jobs of this worker that someone asked to cancel (the NOTIFY may have been missed).
-- $1 uuid worker
SELECT id FROM docket.jobs
 WHERE state = 'running' AND worker = $1::uuid AND cancel_requested_at IS NOT NULL
