-- SIGTERM received: the worker drains and claims nothing more.
-- $1 uuid worker
UPDATE docket.workers SET stopping_at = now(), heartbeat_at = now() WHERE id = $1::uuid
