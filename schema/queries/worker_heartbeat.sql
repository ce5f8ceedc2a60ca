-- Prove liveness. No row back: the worker was declared dead and must register again.
-- $1 uuid worker
UPDATE docket.workers SET heartbeat_at = now() WHERE id = $1::uuid AND dead_at IS NULL RETURNING 1
