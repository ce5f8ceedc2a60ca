-- Clean exit: the row stays for history; nothing of its jobs is running any more.
-- $1 uuid worker
UPDATE docket.workers SET dead_at = now() WHERE id = $1::uuid AND dead_at IS NULL
