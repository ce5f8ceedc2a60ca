-- docket bench: the database clock, seconds after the epoch.
SELECT extract(epoch FROM clock_timestamp())::float8
