-- $1 text queue
SELECT docket.resume($1)
