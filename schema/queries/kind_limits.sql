-- Running jobs per kind against their quota, with the quota's source and the TOML value.
SELECT kind, max_running, running, max_retries, limit_source, config_max_running FROM docket.kind_limits ORDER BY kind
