-- docket bench: fresh statistics and no dead rows before a timed phase.
VACUUM (ANALYZE) docket.jobs
