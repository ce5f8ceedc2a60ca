-- Everything `docket stats` and GET /stats show, in one round trip, as one JSON document:
-- queues, kinds (quota and its source, rate, keyed limits, at its limit now, throughput, timings, retention), the default retention,
-- live workers, stuck jobs and unserved work.
-- No parameters. Reads the ops views; nothing here runs on the claim or finish paths.
SELECT jsonb_build_object(
  'queues', (SELECT coalesce(jsonb_agg(jsonb_build_object(
               'queue', q.queue, 'available', q.available, 'running', q.running, 'waiting', q.waiting,
               'oldest_available_age_s', q.oldest_available_age_s, 'paused', q.paused) ORDER BY q.queue), '[]')
               FROM docket.queue_summary q),
  'kinds', (SELECT coalesce(jsonb_agg(jsonb_build_object(
              'kind', coalesce(l.kind, s.kind), 'running', coalesce(l.running, 0), 'max_running', l.max_running,
              'rate_limit', l.rate_limit, 'rate_period_s', l.rate_period_s, 'rate_burst', l.rate_burst,
              'rate_tokens', l.rate_tokens, 'at_limit', coalesce(l.at_limit, false),
              'partition', l.partition, 'max_running_per_key', l.max_running_per_key,
              'max_key_running', l.max_key_running, 'keys_at_limit', l.keys_at_limit,
              'completed_5m', coalesce(s.completed_5m, 0), 'failed_5m', coalesce(s.failed_5m, 0),
              'completed_1h', coalesce(s.completed_1h, 0), 'failed_1h', coalesce(s.failed_1h, 0),
              'failure_rate_1h', coalesce(s.failure_rate_1h, 0),
              'run_p50_ms', s.run_p50_ms, 'run_p95_ms', s.run_p95_ms,
              'wait_p50_ms', s.wait_p50_ms, 'wait_p95_ms', s.wait_p95_ms, 'limit_source', l.limit_source,
              'retain_completed_s', extract(epoch FROM coalesce(kr.retain_completed, d.retain_completed))::float8,
              'retain_failed_s', extract(epoch FROM coalesce(kr.retain_failed, d.retain_failed))::float8)
              ORDER BY coalesce(l.kind, s.kind)), '[]')
              FROM docket.kind_limits l FULL JOIN docket.kind_stats s ON s.kind = l.kind
              LEFT JOIN docket.kinds kr ON kr.kind = coalesce(l.kind, s.kind) CROSS JOIN docket.settings d),
  'retention', (SELECT jsonb_build_object('retain_completed_s', extract(epoch FROM d.retain_completed)::float8,
                                          'retain_failed_s', extract(epoch FROM d.retain_failed)::float8)
                  FROM docket.settings d),
  'workers', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'id', w.id, 'name', w.name, 'host', w.host, 'pid', w.pid, 'queues', to_jsonb(w.queues),
                'kinds', to_jsonb(w.kinds), 'concurrency', w.concurrency, 'running', w.running,
                'stopping', w.stopping, 'started_at', w.started_at,
                'heartbeat_age_s', extract(epoch FROM w.heartbeat_age)::float8) ORDER BY w.name, w.id), '[]')
                FROM docket.live_workers w),
  'stuck', (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.id), '[]')
              FROM (SELECT * FROM docket.stuck_jobs ORDER BY id LIMIT 100) s),
  'unserved', (SELECT coalesce(jsonb_agg(to_jsonb(u) ORDER BY u.due DESC, u.jobs DESC), '[]')
                 FROM docket.unserved_jobs u))
