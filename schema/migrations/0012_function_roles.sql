-- 0012_function_roles: which role may call which API function is a table, not a literal inside
-- docket.apply_security(). Until now every migration that added a function re-created the whole
-- function to extend its map (0007 by rewriting its text, 0008 and 0010 in full). From here on a
-- migration INSERTs its rows and calls apply_security(), and the table is what the grants say.
CREATE TABLE docket.function_roles (
  name text NOT NULL,  -- a function in schema docket; every overload of the name
  role text NOT NULL CHECK (role IN ('docket_enqueuer', 'docket_worker', 'docket_ops')),
  PRIMARY KEY (name, role)
);

INSERT INTO docket.function_roles (name, role)
SELECT f.key, r.value
  FROM jsonb_each('{
    "enqueue": ["docket_enqueuer", "docket_worker"],
    "enqueue_job": ["docket_enqueuer", "docket_worker"],
    "enqueue_many": ["docket_enqueuer", "docket_worker"],
    "enqueue_many_jobs": ["docket_enqueuer", "docket_worker"],
    "claim_from": ["docket_worker"],
    "claim": ["docket_worker"],
    "finish_and_claim": ["docket_worker"],
    "rate_wait": ["docket_worker"],
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
    "set_rate": ["docket_ops", "docket_worker"],
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
  }'::jsonb) f, jsonb_array_elements_text(f.value) r;

-- Internal steps of the definer functions, which nobody calls directly, are listed with no role:
-- apply_security() revokes them from PUBLIC.
CREATE TABLE docket.internal_functions (
  name text PRIMARY KEY  -- a function in schema docket; every overload of the name
);
INSERT INTO docket.internal_functions (name) VALUES ('schedule_enqueue');

CREATE OR REPLACE FUNCTION docket.apply_security() RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  roles constant text[] := ARRAY['docket_enqueuer', 'docket_worker', 'docket_ops'];
  f record;
  r text;
  present text[];
BEGIN
  SELECT coalesce(array_agg(rolname::text), '{}') INTO present FROM pg_roles WHERE rolname = ANY (roles);
  -- The table is the whole truth: a function or role it no longer names loses its grant.
  FOR f IN
    SELECT p.oid::regprocedure AS sig, p.proname::text AS name,
           EXISTS (SELECT 1 FROM docket.function_roles fr WHERE fr.name = p.proname) AS listed
      FROM pg_proc p
     WHERE p.pronamespace = 'docket'::regnamespace
  LOOP
    IF f.listed THEN
      EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER', f.sig);
      EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, docket, pg_temp', f.sig);
      EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.sig);
    END IF;
    FOREACH r IN ARRAY present LOOP
      IF EXISTS (SELECT 1 FROM docket.function_roles fr WHERE fr.name = f.name AND fr.role = r) THEN
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f.sig, r);
      ELSE
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM %I', f.sig, r);
      END IF;
    END LOOP;
  END LOOP;
  -- Only its owner re-applies the security attributes.
  REVOKE ALL ON FUNCTION docket.apply_security() FROM PUBLIC;
  FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
            WHERE p.pronamespace = 'docket'::regnamespace
              AND p.proname IN (SELECT name FROM docket.internal_functions) LOOP
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
