-- docket bench soak: the size of each index of docket.jobs, for the per-index CSV: which index
-- grows while the table stays flat is what a soak run has to show.
SELECT indexrelname AS name, pg_relation_size(indexrelid) AS bytes
  FROM pg_stat_user_indexes
 WHERE relid = 'docket.jobs'::regclass
 ORDER BY indexrelname
