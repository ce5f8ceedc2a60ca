-- Running jobs per kind against their quota.
SELECT kind, max_running, running, max_retries FROM docket.kind_limits ORDER BY kind
