-- docket bench: whether any job of kind $1 is still available (in queue 'bench') or running,
-- through the claim and running indexes: cheap to poll while a drain runs. (Bench jobs never
-- retry or wait, so the scheduled/retryable index is not consulted.)
-- $1 text kind
SELECT (EXISTS (SELECT 1 FROM docket.jobs WHERE queue = 'bench' AND state = 'available' AND kind = $1)
     OR EXISTS (SELECT 1 FROM docket.jobs WHERE state = 'running' AND kind = $1))::int
