-- Whether any of these kinds has a fleet-wide quota (max_running): the producer then lets its
-- completions claim the replacements of the jobs they finish in the same transaction (a freed
-- quota slot is used without another round trip). Rates and keyed limits gain nothing from that
-- and lose the parallel claim and completion, so without a quota they claim as open kinds do.
-- $1 text[] kinds
SELECT EXISTS (SELECT 1 FROM docket.kinds k WHERE k.kind = ANY ($1::text[]) AND k.max_running IS NOT NULL)
