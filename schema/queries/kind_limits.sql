-- Running jobs per kind against their quota; their rate limit, bucket, and whether a limit holds it back now.
SELECT kind, max_running, running, max_retries, rate_limit, rate_period_s, rate_burst, rate_tokens, at_limit
  FROM docket.kind_limits ORDER BY kind
