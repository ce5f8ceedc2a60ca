-- A worker's config seeds one kind's settings (docket.seed_kind: all of them in one transaction; a
-- field left out leaves the stored value). Returns the quota before and after with its source and
-- what happened to the keyed limits, so the worker logs every change it makes and every TOML value
-- it does not apply.
-- $1 jsonb the kind's settings (db::kind_settings_json)
SELECT s.max_running_before, s.max_running, s.limit_source, s.config_max_running, s.existed, s.partition_applied,
       s.partition_source, s.partition_now
  FROM docket.seed_kind($1::jsonb) s
