-- $1 text queue
SELECT docket.pause($1)
