-- Delete finished jobs past their kind's retention (docket.kinds, else docket.settings).
-- No parameters: the rule lives in the database, the same for every worker.
SELECT docket.prune()
