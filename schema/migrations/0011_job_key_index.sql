-- 0011_job_key_index: the jobs made with a unique key, finished ones too, found by an index.
-- GET /jobs?unique_key=K, `docket jobs --unique-key K` and the dashboard's key filter list them
-- newest first (schema/queries/job_list.sql); jobs_unique_key_idx covers unfinished jobs only.
-- Partial: jobs without a key (most of them) cost nothing more.
CREATE INDEX jobs_key_idx ON docket.jobs (unique_key, id) WHERE unique_key IS NOT NULL;
