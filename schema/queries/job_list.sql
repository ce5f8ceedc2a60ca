-- Jobs newest first, optionally filtered; keyset pagination on id.
-- $1 text kind, $2 text queue, $3 text state, $4 bigint after (last id of the previous page), $5 int limit,
-- $6 text unique_key
-- Each state is its own branch with the state as a literal, so that the partial indexes of that
-- state apply; the branches' pages (7 at most) merge by id. A state filter leaves one branch: the
-- others' outer condition folds to false when the statement is planned for its arguments (as the
-- API's sessions plan), so they are not even planned as scans. Each branch is an ordered range of an index ending in id
-- (0013), which the LIMIT stops: jobs_list_{kind,queue,kind_queue}_idx for finished states, so a
-- rare kind's page reads its own rows, not the history; jobs_list_state_idx for every state but
-- running (with a kind or queue filter an unfinished state reads at most its backlog). Running
-- rows, few by nature, come from jobs_running_idx, sorted: `id + 0` keeps them off the primary
-- key, which a page would otherwise walk end to end looking for rows that are not there.
-- A key filter walks jobs_key_idx (0011), so "the jobs made with key K" reads only those rows.
WITH f AS NOT MATERIALIZED (
  SELECT j.id, j.state
    FROM docket.jobs j
   WHERE ($1::text IS NULL OR j.kind = $1)
     AND ($2::text IS NULL OR j.queue = $2)
     AND ($4::bigint IS NULL OR j.id < $4)
     AND ($6::text IS NULL OR j.unique_key = $6)
), page AS (
  (SELECT id FROM (SELECT id FROM f WHERE state = 'completed' ORDER BY id DESC LIMIT $5) b
    WHERE coalesce($3::text, 'completed') = 'completed')
  UNION ALL
  (SELECT id FROM (SELECT id FROM f WHERE state = 'failed' ORDER BY id DESC LIMIT $5) b
    WHERE coalesce($3::text, 'failed') = 'failed')
  UNION ALL
  (SELECT id FROM (SELECT id FROM f WHERE state = 'cancelled' ORDER BY id DESC LIMIT $5) b
    WHERE coalesce($3::text, 'cancelled') = 'cancelled')
  UNION ALL
  (SELECT id FROM (SELECT id FROM f WHERE state = 'available' ORDER BY id DESC LIMIT $5) b
    WHERE coalesce($3::text, 'available') = 'available')
  UNION ALL
  (SELECT id FROM (SELECT id FROM f WHERE state = 'scheduled' ORDER BY id DESC LIMIT $5) b
    WHERE coalesce($3::text, 'scheduled') = 'scheduled')
  UNION ALL
  (SELECT id FROM (SELECT id FROM f WHERE state = 'retryable' ORDER BY id DESC LIMIT $5) b
    WHERE coalesce($3::text, 'retryable') = 'retryable')
  UNION ALL
  (SELECT id FROM (SELECT id FROM f WHERE state = 'running' ORDER BY id + 0 DESC LIMIT $5) b
    WHERE coalesce($3::text, 'running') = 'running')
  ORDER BY id DESC
  LIMIT $5
)
SELECT docket.job_json(j)::text AS job
  FROM page
  JOIN docket.jobs j ON j.id = page.id
 ORDER BY j.id DESC
