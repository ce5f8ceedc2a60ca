-- Clear an operator's quota: the kind goes back to its workers' TOML value (or no limit).
-- $1 text kind. Returns whether an operator value was cleared.
SELECT docket.reset_limit($1)
