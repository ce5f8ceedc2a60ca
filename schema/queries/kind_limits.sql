-- Running jobs per kind against their quota; their rate limit, bucket and held-back jobs.
SELECT kind, max_running, running, max_retries, rate_limit, rate_period_s, rate_burst, rate_tokens, held
  FROM docket.kind_limits ORDER BY kind
