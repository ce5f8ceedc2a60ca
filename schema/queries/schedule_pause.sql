-- Pause a schedule (P0002 when unknown). $1 name
SELECT docket.pause_schedule($1)
