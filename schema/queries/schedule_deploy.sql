-- Applies the config's [schedules] in one statement: all of them or, on the first refused one, none
-- (docket.schedule_from_config; its 22023 names schedules.NAME). With $2, config schedules not in
-- $1 are deleted (docket.prune_config_schedules); run-time schedules are never touched.
-- $1 jsonb array of {name, cron, kind, args, tz, queue, spread_s, on_overlap, on_missed, enabled,
-- priority, max_retries}, $2 boolean prune
WITH applied AS (
  SELECT s.name, s.source
    FROM jsonb_array_elements($1::jsonb) e,
         LATERAL docket.schedule_from_config(e->>'name', e->>'cron', e->>'kind', e->'args', e->>'tz', e->>'queue',
                                             make_interval(secs => (e->>'spread_s')::float8), e->>'on_overlap',
                                             e->>'on_missed', (e->>'enabled')::boolean, (e->>'priority')::int,
                                             (e->>'max_retries')::int) s
), pruned AS (
  SELECT p.name
    FROM (SELECT 1 WHERE $2::boolean) only_when_pruning,
         LATERAL docket.prune_config_schedules(ARRAY(SELECT e->>'name' FROM jsonb_array_elements($1::jsonb) e)) p(name)
)
SELECT (SELECT coalesce(jsonb_agg(jsonb_build_object('name', a.name, 'source', a.source) ORDER BY a.name), '[]')
          FROM applied a)::text AS applied,
       (SELECT coalesce(jsonb_agg(p.name ORDER BY p.name), '[]') FROM pruned p)::text AS deleted
