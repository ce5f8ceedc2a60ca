-- Completed and failed jobs per queue and minute over the last hour, for the dashboard's chart,
-- as one JSON array of {queue, minute, completed, failed}. Walks only the last hour of the
-- partial jobs_finished_idx (state, finished_at), like docket.kind_stats; the rows it answers
-- are capped (queues x 61 minutes), so a table with thousands of queues cannot make it unbounded.
-- $1 int most rows
SELECT coalesce(jsonb_agg(jsonb_build_object('queue', t.queue, 'minute', t.minute, 'completed', t.completed,
                                             'failed', t.failed) ORDER BY t.queue, t.minute), '[]')::text
  FROM (SELECT j.queue, date_trunc('minute', j.finished_at) AS minute,
               count(*) FILTER (WHERE j.state = 'completed') AS completed,
               count(*) FILTER (WHERE j.state = 'failed') AS failed
          FROM docket.jobs j
         WHERE j.state IN ('completed', 'failed')
           AND j.finished_at >= date_trunc('minute', now()) - interval '59 minutes'
           AND j.finished_at <= now() + interval '1 minute'
         GROUP BY 1, 2
         ORDER BY 1, 2
         LIMIT $1) t
