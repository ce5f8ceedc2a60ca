-- 0004_roles: three NOLOGIN roles for least privilege, and the SQL API as SECURITY DEFINER functions.
--
--   docket_enqueuer  calls the enqueue functions and reads jobs; cannot write docket.jobs itself.
--   docket_worker    what a worker process needs: claims, fenced finishing writes, heartbeats,
--                    its kinds' settings, maintenance (rescue, promote, prune, crawls).
--   docket_ops       steers: pause, resume, cancel, retry, set_limit; reads everything.
-- Users grant them to their login roles: GRANT docket_enqueuer TO app_login;
--
-- RULE for later migrations: CREATE OR REPLACE FUNCTION resets SECURITY DEFINER and the
-- search_path of a function, and a new function or table has no grants. A migration that
-- replaces or adds one of the functions or tables below must end with
--   SELECT docket.apply_security();
-- which re-applies the attributes and grants (it is idempotent). New functions or tables a role
-- needs are added to the lists in docket.apply_security (by CREATE OR REPLACE of it).

-- Creates the roles when they are missing. Idempotent, and safe when migrations of several
-- databases of one cluster run at once (roles are cluster-wide: a concurrent creator wins and we
-- go on). Without CREATEROLE the roles are left to an administrator (a WARNING says so);
-- docket.apply_security() grants to whichever roles exist, so it can be run again after.
DO $$
DECLARE
  r text;
  may_create boolean;
BEGIN
  SELECT rolsuper OR rolcreaterole INTO may_create FROM pg_roles WHERE rolname = current_user;
  FOREACH r IN ARRAY ARRAY['docket_enqueuer', 'docket_worker', 'docket_ops'] LOOP
    CONTINUE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
    IF NOT may_create THEN
      RAISE WARNING 'role % does not exist and % may not create roles: a superuser runs CREATE ROLE % NOLOGIN, then the database owner runs SELECT docket.apply_security()',
        r, current_user, r;
      CONTINUE;
    END IF;
    BEGIN
      EXECUTE format('CREATE ROLE %I NOLOGIN', r);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;  -- another migrator created it meanwhile
    END;
  END LOOP;
END $$;

-- SECURITY DEFINER with a fixed search_path on the functions the roles call, EXECUTE only for
-- the roles that need them, and the table privileges of each role. Run by the owner of the
-- docket schema (it owns the functions). Re-run it after replacing any of these functions.
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
    "run_schedule_now": ["docket_ops"]
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
