-- docket bench quota: jobs of kind $1 running now.
-- $1 text kind
SELECT count(*) FROM docket.jobs WHERE state = 'running' AND kind = $1
