-- Waiting jobs no live worker can run, by queue and kind, as one JSON array (docket.unserved_jobs):
-- most due first. No parameters.
SELECT coalesce(jsonb_agg(to_jsonb(u) ORDER BY u.due DESC, u.jobs DESC, u.queue, u.kind), '[]')
  FROM docket.unserved_jobs u
