-- 0015_job_list_indexes: the job list (GET /jobs, `docket jobs`, the dashboard's jobs page)
-- filtered by kind, queue and/or state reads a page through an index, never the whole history,
-- however rare the filter and however many jobs the table keeps. Without these a rare kind's page
-- walked the primary key under its LIMIT: with 1M jobs, the whole table for a kind of ten jobs.
-- job_list.sql asks each state separately (state = 'x' is a literal there, so these partial
-- indexes apply) and merges the states' pages by id: each index ends in id, so a state's page is
-- an ordered range of one index that the LIMIT stops.
-- Finished states (the history, nearly all of a big table) are indexed by kind, by queue, by both
-- and alone; a job writes those entries once, when it finishes. Unfinished states are indexed by
-- state alone: enqueueing writes one entry more (indexing them by kind and queue as well made
-- `docket bench enqueue` about half as fast), so a filtered page of unfinished jobs may read that
-- state's backlog, never the history. Running jobs (at most the fleet's concurrency) come from
-- jobs_running_idx: claiming writes no entry here.
CREATE INDEX jobs_list_kind_idx ON docket.jobs (kind, state, id)
  WHERE state IN ('completed', 'failed', 'cancelled');
CREATE INDEX jobs_list_queue_idx ON docket.jobs (queue, state, id)
  WHERE state IN ('completed', 'failed', 'cancelled');
-- Kind and queue together: two common filters whose combination is rare (or empty) would
-- otherwise walk one of them and filter the other, reading up to all of its rows.
CREATE INDEX jobs_list_kind_queue_idx ON docket.jobs (kind, queue, state, id)
  WHERE state IN ('completed', 'failed', 'cancelled');
CREATE INDEX jobs_list_state_idx ON docket.jobs (state, id) WHERE state <> 'running';
