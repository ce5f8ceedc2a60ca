-- docket bench: database connections per application_name (a worker's fixed budget).
SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = current_database() GROUP BY 1 ORDER BY 1
