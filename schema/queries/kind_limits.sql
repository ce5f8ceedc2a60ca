-- Running jobs per kind against their quota (with the quota's source and the TOML value); their
-- rate limit, bucket, and whether a limit holds it back now; the keyed limits (partition, per-key
-- running limit and busiest key, per-key rate, keys at a limit now).
SELECT kind, max_running, running, max_retries, limit_source, config_max_running,
       rate_limit, rate_period_s, rate_burst, rate_tokens, at_limit,
       partition, max_running_per_key, max_key_running, rate_per_key_limit, rate_per_key_period_s,
       rate_per_key_burst, keys_at_limit
  FROM docket.kind_limits ORDER BY kind
