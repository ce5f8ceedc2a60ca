-- Running jobs per kind against their quota (with the quota's source and the TOML value); their
-- rate limit, bucket, and whether a limit holds it back now.
SELECT kind, max_running, running, max_retries, limit_source, config_max_running,
       rate_limit, rate_period_s, rate_burst, rate_tokens, at_limit
  FROM docket.kind_limits ORDER BY kind
