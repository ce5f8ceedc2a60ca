-- Resume a schedule from the next slot after now (P0002 when unknown). $1 name
SELECT docket.resume_schedule($1)
