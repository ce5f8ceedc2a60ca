-- Schedules per state for /metrics: enabled, paused, and late (enabled, its job due more than 5 s
-- ago and not yet enqueued: no worker is ticking, or the ticks fall behind). One pass over the table.
SELECT count(*) FILTER (WHERE enabled) AS enabled,
       count(*) FILTER (WHERE NOT enabled) AS paused,
       count(*) FILTER (WHERE enabled AND next_run_at < now() - interval '5 seconds') AS late
  FROM docket.schedules
