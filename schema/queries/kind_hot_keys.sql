-- A keyed kind's busiest keys (see docket.kind_hot_keys): key, running, bucket tokens, at a limit,
-- jobs waiting (up to 100000).
-- $1 text kind, $2 int how many (at most 1000)
SELECT key, running, rate_tokens, at_limit, available FROM docket.kind_hot_keys($1, $2::int)
