-- Check keyed limits as docket.set_partition would, writing nothing (raises 22023 naming the field).
-- $1 text partition, $2 int max_running_per_key, $3 text rate_per_key, $4 int burst_per_key
SELECT 1 FROM docket.check_partition($1, $2::int, $3, $4::int)
