-- Delete a schedule (its jobs stay); true when it existed. $1 name
SELECT docket.unschedule($1)
