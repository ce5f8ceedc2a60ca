-- Set or remove (NULL) a kind's rate limit, "N/PERIOD" (see docket.set_rate).
-- $1 text kind, $2 text rate, $3 int burst
SELECT docket.set_rate($1, $2, $3::int)
