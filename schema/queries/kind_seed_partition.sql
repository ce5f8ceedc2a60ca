-- A worker's TOML keyed limits at its start (see docket.seed_partition): applied unless an operator
-- set the kind's keyed limits. Returns whether they were applied, the source of the settings in
-- force ('config', 'operator') and their partition.
-- $1 text kind, $2 text partition, $3 int max_running_per_key, $4 text rate_per_key, $5 int burst_per_key
SELECT s.applied, s.source, s.partition_now FROM docket.seed_partition($1, $2, $3::int, $4, $5::int) s
