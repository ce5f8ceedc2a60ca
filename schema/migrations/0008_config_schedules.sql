-- 0008: schedules declared in TOML ([schedules.NAME]), applied by `docket migrate --config` and at
-- every worker's start with source = 'config'. The rules a deploy follows:
--   * a run-time schedule (source 'runtime': SQL, HTTP, CLI) is never changed or deleted by a deploy,
--     even when the TOML declares one of the same name;
--   * an operator's pause or resume of a config schedule survives deploys: the TOML's `enabled`
--     is applied when the schedule is created and whenever the TOML's value changes, not otherwise
--     (config_enabled remembers what the TOML said last);
--   * a config schedule removed from the TOML is deleted by prune_config_schedules, which only
--     `docket migrate` calls, and only for a file that has a [schedules] table: workers started
--     with different files never delete each other's schedules.

-- What the TOML said about `enabled` at the last deploy; NULL for run-time schedules.
ALTER TABLE docket.schedules ADD COLUMN config_enabled boolean;

-- Creates or updates a schedule declared in the config (source 'config'); the row afterwards.
-- Validates like docket.schedule, and the error names the schedule too (22023 "schedules.NAME:
-- ..."). The kind is registered in docket.kinds: the config declares it ([kinds.KIND], checked
-- when the file is loaded), so a deploy may run before any worker has started. A run-time
-- schedule of that name is returned untouched: the caller sees source = 'runtime', reports it.
CREATE FUNCTION docket.schedule_from_config(name text, cron text, kind text, args jsonb DEFAULT '{}',
                                            tz text DEFAULT 'UTC', queue text DEFAULT NULL,
                                            spread interval DEFAULT NULL, on_overlap text DEFAULT 'skip',
                                            on_missed text DEFAULT 'skip', enabled boolean DEFAULT true,
                                            priority int DEFAULT 0, max_retries int DEFAULT NULL)
RETURNS docket.schedules
LANGUAGE plpgsql AS $$
DECLARE
  v_old docket.schedules;
  v_found boolean;
  v_enabled boolean;
  v_row docket.schedules;
BEGIN
  -- The lock orders concurrent deploys of one name (several workers starting at once).
  SELECT * INTO v_old FROM docket.schedules s WHERE s.name = schedule_from_config.name FOR UPDATE;
  v_found := FOUND;
  IF v_found AND v_old.source <> 'config' THEN
    RETURN v_old;
  END IF;
  v_enabled := coalesce(schedule_from_config.enabled, true);
  IF v_found AND v_old.config_enabled IS NOT DISTINCT FROM v_enabled THEN
    v_enabled := v_old.enabled;  -- the TOML did not change its mind: an operator's pause or resume stands
  END IF;
  -- A paused schedule that the TOML now enables starts from its next slot after now, as
  -- resume_schedule does: slots passed while paused do not run.
  INSERT INTO docket.kinds (kind) VALUES (schedule_from_config.kind) ON CONFLICT DO NOTHING;
  BEGIN
  v_row := docket.schedule(schedule_from_config.name, schedule_from_config.cron, schedule_from_config.kind,
                           schedule_from_config.args, schedule_from_config.tz, schedule_from_config.queue,
                           schedule_from_config.spread, schedule_from_config.on_overlap,
                           schedule_from_config.on_missed,
                           CASE WHEN v_found AND NOT v_old.enabled THEN false ELSE v_enabled END,
                           schedule_from_config.priority, schedule_from_config.max_retries, 'config');
  EXCEPTION WHEN invalid_parameter_value THEN
    RAISE EXCEPTION 'schedules.%: %', schedule_from_config.name, SQLERRM USING ERRCODE = '22023';
  END;
  IF v_found AND NOT v_old.enabled AND v_enabled THEN
    PERFORM docket.resume_schedule(schedule_from_config.name);
  END IF;
  UPDATE docket.schedules s SET config_enabled = coalesce(schedule_from_config.enabled, true)
   WHERE s.name = schedule_from_config.name
  RETURNING * INTO v_row;
  RETURN v_row;
END $$;

-- Deletes the config schedules whose names are not in `keep` (removed from the TOML); their jobs
-- stay. Run-time schedules are never deleted. Returns the deleted names.
CREATE FUNCTION docket.prune_config_schedules(keep text[]) RETURNS SETOF text
LANGUAGE sql AS $$
  DELETE FROM docket.schedules s
   WHERE s.source = 'config' AND NOT (s.name = ANY (coalesce(prune_config_schedules.keep, '{}')))
  RETURNING s.name
$$;

-- The two new functions join the role map (0004, with 0007's entries): workers apply their config,
-- operators prune.
CREATE OR REPLACE FUNCTION docket.apply_security() RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  -- function name -> the roles that may call it (every overload of the name)
  callers constant jsonb := '{
    "enqueue": ["docket_enqueuer", "docket_worker"],
    "enqueue_job": ["docket_enqueuer", "docket_worker"],
    "enqueue_many": ["docket_enqueuer", "docket_worker"],
    "enqueue_many_jobs": ["docket_enqueuer", "docket_worker"],
    "claim_from": ["docket_worker"],
    "claim": ["docket_worker"],
    "finish_and_claim": ["docket_worker"],
    "rescue": ["docket_worker"],
    "promote": ["docket_worker"],
    "prune": ["docket_worker"],
    "crawl_sweep": ["docket_worker"],
    "crawl_owns": ["docket_worker"],
    "crawl_start": ["docket_worker"],
    "crawl_page": ["docket_worker"],
    "crawl_error": ["docket_worker"],
    "crawl_finalizing": ["docket_worker"],
    "crawl_done": ["docket_worker"],
    "crawl_activate": ["docket_worker"],
    "crawl_host_acquire": ["docket_worker"],
    "crawl_host_release": ["docket_worker"],
    "set_limit": ["docket_ops"],
    "pause": ["docket_ops"],
    "resume": ["docket_ops"],
    "cancel": ["docket_ops"],
    "retry": ["docket_ops"],
    "schedule_tick": ["docket_worker"],
    "schedule": ["docket_ops"],
    "unschedule": ["docket_ops"],
    "pause_schedule": ["docket_ops"],
    "resume_schedule": ["docket_ops"],
    "run_schedule_now": ["docket_ops"],
    "reset_limit": ["docket_ops"],
    "set_retention": ["docket_ops"],
    "unserved_reason": ["docket_enqueuer", "docket_worker", "docket_ops"],
    "schedule_from_config": ["docket_worker", "docket_ops"],
    "prune_config_schedules": ["docket_ops"]
  }';
  roles constant text[] := ARRAY['docket_enqueuer', 'docket_worker', 'docket_ops'];
  f record;
  r text;
  present text[];
BEGIN
  SELECT coalesce(array_agg(rolname::text), '{}') INTO present FROM pg_roles WHERE rolname = ANY (roles);
  FOR f IN
    SELECT p.oid::regprocedure AS sig, p.proname::text AS name
      FROM pg_proc p
     WHERE p.pronamespace = 'docket'::regnamespace AND callers ? p.proname
  LOOP
    EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER', f.sig);
    EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, docket, pg_temp', f.sig);
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.sig);
    FOR r IN SELECT jsonb_array_elements_text(callers -> f.name) LOOP
      IF r = ANY (present) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f.sig, r);
      END IF;
    END LOOP;
  END LOOP;
  -- Only its owner re-applies the security attributes.
  REVOKE ALL ON FUNCTION docket.apply_security() FROM PUBLIC;
  -- Internal steps of the definer functions: nobody calls them directly.
  FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
            WHERE p.pronamespace = 'docket'::regnamespace AND p.proname IN ('schedule_enqueue') LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.sig);
  END LOOP;

  FOREACH r IN ARRAY present LOOP
    EXECUTE format('GRANT USAGE ON SCHEMA docket TO %I', r);
    -- Every client checks the schema version before its first statement.
    EXECUTE format('GRANT SELECT ON docket.schema_migrations TO %I', r);
  END LOOP;
  IF 'docket_enqueuer' = ANY (present) THEN
    -- Reads jobs (and kinds: a bulk enqueue looks up the crawl kinds); writes only through enqueue.
    GRANT SELECT ON docket.jobs, docket.kinds TO docket_enqueuer;
  END IF;
  IF 'docket_worker' = ANY (present) THEN
    GRANT SELECT ON ALL TABLES IN SCHEMA docket TO docket_worker;
    -- The direct writes of schema/queries: the quota-free claim (job_claim_open), completions
    -- (job_complete), progress (job_progress); never kind, args, queue, errors or result.
    GRANT UPDATE (state, attempt, started_at, worker, finished_at, progress) ON docket.jobs TO docket_worker;
    -- Registration and heartbeats (worker_*), the kinds' settings a worker config seeds (kind_seed).
    GRANT INSERT, UPDATE ON docket.workers, docket.kinds TO docket_worker;
  END IF;
  IF 'docket_ops' = ANY (present) THEN
    GRANT SELECT ON ALL TABLES IN SCHEMA docket TO docket_ops;
  END IF;
END $fn$;

SELECT docket.apply_security();
