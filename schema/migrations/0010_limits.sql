-- 0010_limits: flow control in the claim. A kind may have a rate limit (N jobs started per
-- period, across the fleet) next to its max_running quota; both are enforced inside the claim
-- transaction under the kind's row lock, so they hold exactly however many workers claim.
--
-- The rate is a token bucket, not a sliding window: the bucket is two columns of the kind's row
-- (tokens, and when they were counted), read and written in O(1) by the claim that already holds
-- that row's lock; a sliding window would count the jobs started in the last period on every
-- claim (thousands of rows for 100/1m) and releases a whole period's worth at its start. The
-- bucket holds at most `burst` tokens and refills at N per period, so in ANY window of one
-- period at most N + burst jobs start, and over a long backlog the rate is N per period.
-- burst defaults to one second's worth of the rate (at least 1, at most N).

-- Rate limit settings and the bucket. A NULL rate_tokens is a full bucket.
ALTER TABLE docket.kinds
  ADD COLUMN rate_limit int CONSTRAINT kinds_rate_limit_check CHECK (rate_limit IS NULL OR rate_limit BETWEEN 1 AND 1000000),
  ADD COLUMN rate_period interval
    CONSTRAINT kinds_rate_period_check CHECK (rate_period IS NULL OR rate_period BETWEEN interval '1 millisecond' AND interval '1 day'),
  ADD COLUMN rate_burst int CONSTRAINT kinds_rate_burst_check CHECK (rate_burst IS NULL OR rate_burst BETWEEN 1 AND 1000000),
  ADD COLUMN rate_tokens float8,
  ADD COLUMN rate_at timestamptz,
  ADD CONSTRAINT kinds_rate_check CHECK ((rate_limit IS NULL) = (rate_period IS NULL)
                                         AND (rate_burst IS NULL OR rate_limit IS NOT NULL));

-- "N/PERIOD" (100/1m, 20/s, 5/500ms, 1000/1.5h): N in 1..1000000, PERIOD a number (default 1) and
-- one of the units ms, s, m, h, d, between 1 ms and 1 day. Raises 22023 naming the field.
CREATE FUNCTION docket.parse_rate(p_rate text, OUT n int, OUT period interval)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  m text[];
BEGIN
  IF p_rate IS NULL THEN RETURN; END IF;
  m := regexp_match(left(p_rate, 100), '^\s*([0-9]{1,7})\s*/\s*([0-9]{0,6}(\.[0-9]{1,3})?)\s*(ms|s|m|h|d)\s*$');
  IF m IS NULL OR length(p_rate) > 100 THEN
    RAISE EXCEPTION 'rate must be N/PERIOD such as 100/1m, 20/s or 5/500ms (units ms, s, m, h, d), got "%"',
      left(p_rate, 100) USING ERRCODE = '22023';
  END IF;
  n := m[1]::int;
  period := (CASE WHEN m[2] = '' THEN 1 ELSE m[2]::numeric END)
            * CASE m[4] WHEN 'ms' THEN interval '1 millisecond' WHEN 's' THEN interval '1 second'
                        WHEN 'm' THEN interval '1 minute' WHEN 'h' THEN interval '1 hour' ELSE interval '1 day' END;
  IF n < 1 OR n > 1000000 THEN
    RAISE EXCEPTION 'rate must allow 1 to 1000000 jobs per period, got %', n USING ERRCODE = '22023';
  END IF;
  IF period < interval '1 millisecond' OR period > interval '1 day' THEN
    RAISE EXCEPTION 'rate period must be between 1ms and 1d, got %', period USING ERRCODE = '22023';
  END IF;
END $$;

-- The bucket's size: the burst set, else one second's worth of the rate, at least 1, at most N.
CREATE FUNCTION docket.rate_capacity(p_limit int, p_period interval, p_burst int) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(p_burst, greatest(1, least(p_limit, ceil(p_limit / extract(epoch FROM p_period)))))::float8
$$;

-- The tokens a kind's bucket holds at `p_at`: what it held at rate_at plus the refill, capped.
CREATE FUNCTION docket.rate_tokens_at(k docket.kinds, p_at timestamptz) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN k.rate_limit IS NULL THEN NULL
              WHEN k.rate_tokens IS NULL OR k.rate_at IS NULL THEN docket.rate_capacity(k.rate_limit, k.rate_period, k.rate_burst)
              ELSE least(docket.rate_capacity(k.rate_limit, k.rate_period, k.rate_burst),
                         k.rate_tokens + k.rate_limit / extract(epoch FROM k.rate_period)::float8
                                         * greatest(0, extract(epoch FROM p_at - k.rate_at)::float8)) END
$$;

-- Seconds until the first of these kinds whose bucket is empty has a token again (NULL: none is
-- empty). A worker whose claim came back short sleeps that long, not a whole poll interval.
-- VOLATILE: called after docket.claim in the same statement, it must see that claim's tokens.
CREATE FUNCTION docket.rate_wait(p_kinds text[]) RETURNS float8
LANGUAGE sql VOLATILE AS $$
  SELECT min((1 - t.tokens) / (k.rate_limit / extract(epoch FROM k.rate_period)::float8))
    FROM docket.kinds k CROSS JOIN LATERAL (SELECT docket.rate_tokens_at(k, now()) AS tokens) t
   WHERE k.kind = ANY (p_kinds) AND k.rate_limit IS NOT NULL AND t.tokens < 1
$$;

-- Set or remove (rate NULL) a kind's rate limit; burst NULL is the default (see rate_capacity).
-- A changed setting starts from a full bucket; setting the same one again leaves the bucket.
CREATE FUNCTION docket.set_rate(kind text, rate text, burst int DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  r record;
BEGIN
  PERFORM docket.check_name('kind', kind);
  r := docket.parse_rate(rate);
  IF burst IS NOT NULL AND rate IS NULL THEN
    RAISE EXCEPTION 'burst needs a rate' USING ERRCODE = '22023';
  END IF;
  IF burst IS NOT NULL AND (burst < 1 OR burst > 1000000) THEN
    RAISE EXCEPTION 'burst must be between 1 and 1000000, got %', burst USING ERRCODE = '22023';
  END IF;
  INSERT INTO docket.kinds AS k (kind, rate_limit, rate_period, rate_burst)
  VALUES (set_rate.kind, r.n, r.period, set_rate.burst)
  ON CONFLICT ON CONSTRAINT kinds_pkey
  DO UPDATE SET rate_limit = excluded.rate_limit, rate_period = excluded.rate_period, rate_burst = excluded.rate_burst,
                rate_tokens = CASE WHEN (k.rate_limit, k.rate_period, k.rate_burst)
                                        IS NOT DISTINCT FROM (excluded.rate_limit, excluded.rate_period, excluded.rate_burst)
                                   THEN k.rate_tokens END,
                rate_at = CASE WHEN (k.rate_limit, k.rate_period, k.rate_burst)
                                    IS NOT DISTINCT FROM (excluded.rate_limit, excluded.rate_period, excluded.rate_burst)
                               THEN k.rate_at END,
                updated_at = now();
  PERFORM pg_notify('docket_control', 'limit');
END $$;

-- docket.claim as before, and a kind with a rate claims at most the whole tokens its bucket holds
-- (after max_running's cap, when it has both); the tokens taken are written back under the lock.
-- A claim that takes nothing writes nothing: the bucket's refill is a function of time, so not
-- writing it is exact. Jobs' started_at and the bucket both use now(): a claim that waited for the
-- lock refills from the later of its now() and the last writer's, never backwards.
CREATE OR REPLACE FUNCTION docket.claim(p_worker uuid, p_queues text[], p_kinds text[], p_limit int)
RETURNS TABLE (id bigint, kind text, queue text, args jsonb, attempt int, max_retries int,
               priority smallint, run_at timestamptz, inserted_at timestamptz, unique_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_queues text[];
  v_open text[];      -- kinds without a limit
  v_limited text[];   -- kinds with a quota or a rate this worker handles
  v_left int := p_limit;
  v_slots int;
  v_tokens float8;
  v_got int;
  k docket.kinds;
BEGIN
  IF p_limit <= 0 THEN RETURN; END IF;
  SELECT array_agg(q) INTO v_queues FROM unnest(p_queues) q
   WHERE NOT EXISTS (SELECT 1 FROM docket.queues dq WHERE dq.name = q AND dq.paused_at IS NOT NULL);
  IF v_queues IS NULL THEN RETURN; END IF;

  SELECT array_agg(d.kind ORDER BY d.kind) INTO v_limited FROM docket.kinds d
   WHERE d.kind = ANY (p_kinds) AND (d.max_running IS NOT NULL OR d.rate_limit IS NOT NULL);

  IF v_limited IS NULL THEN
    RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, p_kinds, p_limit);
    RETURN;
  END IF;

  -- Limited kinds first: they are the scarce ones. Lock each kind's row (in kind order, so
  -- claimers never deadlock), then count in a later statement.
  FOR k IN
    SELECT * FROM docket.kinds d WHERE d.kind = ANY (v_limited) ORDER BY d.kind FOR UPDATE
  LOOP
    EXIT WHEN v_left <= 0;
    v_slots := v_left;
    IF k.max_running IS NOT NULL THEN
      SELECT least(v_slots, k.max_running - count(*)) INTO v_slots
        FROM docket.jobs j WHERE j.state = 'running' AND j.kind = k.kind;
    END IF;
    v_tokens := docket.rate_tokens_at(k, now());
    IF v_tokens IS NOT NULL THEN
      v_slots := least(v_slots, floor(v_tokens)::int);
    END IF;
    CONTINUE WHEN v_slots <= 0;  -- (limits removed while we waited for the lock: v_left slots)
    RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, ARRAY[k.kind], v_slots);
    GET DIAGNOSTICS v_got = ROW_COUNT;
    v_left := v_left - v_got;
    IF v_tokens IS NOT NULL AND v_got > 0 THEN
      UPDATE docket.kinds d SET rate_tokens = v_tokens - v_got, rate_at = greatest(now(), coalesce(d.rate_at, now()))
       WHERE d.kind = k.kind;
    END IF;
  END LOOP;

  SELECT array_agg(x) INTO v_open FROM unnest(p_kinds) x WHERE x <> ALL (v_limited);
  IF v_left > 0 AND v_open IS NOT NULL THEN
    RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, v_open, v_left);
  END IF;
END $$;

-- Running jobs per kind against its quota (with 0007's source, TOML value and queue) and its rate
-- (columns may only be added at the end):
-- the rate as N and period, the bucket's size and the tokens it holds now, and `at_limit`: a limit
-- holds the kind's available jobs back right now (running at max_running, or no whole token). (A
-- count of those jobs would need an index of available jobs by kind, written on every enqueue and
-- claim of every kind: not worth it on the hot path.)
CREATE OR REPLACE VIEW docket.kind_limits AS
  WITH running AS (SELECT j.kind, count(*) AS running FROM docket.jobs j WHERE j.state = 'running' GROUP BY j.kind)
  SELECT coalesce(k.kind, r.kind) AS kind, k.max_running, coalesce(r.running, 0) AS running, k.max_retries,
         k.limit_source, k.config_max_running, k.queue, k.rate_limit, extract(epoch FROM k.rate_period)::float8 AS rate_period_s,
         CASE WHEN k.rate_limit IS NOT NULL THEN docket.rate_capacity(k.rate_limit, k.rate_period, k.rate_burst) END
           AS rate_burst,
         docket.rate_tokens_at(k, now()) AS rate_tokens,
         coalesce(coalesce(r.running, 0) >= k.max_running OR docket.rate_tokens_at(k, now()) < 1, false) AS at_limit
    FROM docket.kinds k FULL JOIN running r ON r.kind = k.kind;

-- The claim is pinned as in 0001 (CREATE OR REPLACE dropped its settings).
ALTER FUNCTION docket.claim(uuid, text[], text[], int) SET enable_seqscan = off;
ALTER FUNCTION docket.claim(uuid, text[], text[], int) SET enable_bitmapscan = off;
ALTER FUNCTION docket.claim(uuid, text[], text[], int) SET plan_cache_mode = force_generic_plan;

-- set_rate steers like set_limit (docket_ops); rate_wait is read by the worker's claim. The map is
-- 0008's (with 0007's entries) plus these two.
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
