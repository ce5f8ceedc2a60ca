-- One crawl as JSON, with its job's state.
-- $1 bigint crawl id
SELECT (to_jsonb(c) || jsonb_build_object('job_state', j.state, 'attempt', j.attempt))::text
  FROM docket.crawls c LEFT JOIN docket.jobs j ON j.id = c.job_id
 WHERE c.id = $1
