-- Set a kind's keyed limits all at once (see docket.set_partition); a NULL partition removes them.
-- $1 text kind, $2 text partition (args.tenant), $3 int max_running_per_key, $4 text rate_per_key
-- (N/PERIOD), $5 int burst_per_key
SELECT docket.set_partition($1, $2, $3::int, $4, $5::int)
