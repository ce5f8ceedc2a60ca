-- One kind's settings from a worker's config reach the database as one value (KindSettings, as a
-- JSON object) through one function, docket.seed_kind: a new per-kind setting changes the C++
-- struct, a migration and this function, not a chain of positional arguments through four queries.
-- The source rules are those of 0007 (max_running), 0010 (rate), 0018 (keyed limits) and 0019
-- (unique, result_ttl), unchanged; all of a kind's settings are written in one transaction, so a
-- refused setting writes none of them.
-- And docket.kind_limited: the one statement of which kinds take the locked claim path, used by
-- both claim paths (docket.claim and the open claim of schema/queries/job_claim_open.sql).

-- A kind claims through the locked path (its row locked, running jobs counted) when it has a
-- quota, a rate or a partition (keyed limits). Both claim paths ask this function, so they can
-- never disagree about a kind.
CREATE FUNCTION docket.kind_limited(k docket.kinds) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT k.max_running IS NOT NULL OR k.rate_limit IS NOT NULL OR k.partition IS NOT NULL
$$;

-- A field of a kind's settings: the JSON value when present and not null, after checking its JSON
-- type ('string', 'number', 'array'); NULL when absent or null. The error names the field.
CREATE FUNCTION docket.setting(settings jsonb, field text, json_type text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v jsonb := settings -> field;
BEGIN
  IF v IS NULL OR jsonb_typeof(v) = 'null' THEN RETURN NULL; END IF;
  IF jsonb_typeof(v) <> json_type THEN
    RAISE EXCEPTION 'kind setting % must be a JSON %, got %', field, json_type, jsonb_typeof(v) USING ERRCODE = '22023';
  END IF;
  RETURN v;
END $$;

-- An integer setting in [0, 1000000000]; NULL when absent. The error names the field.
CREATE FUNCTION docket.setting_int(settings jsonb, field text) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v numeric := docket.setting(settings, field, 'number')::text::numeric;
BEGIN
  IF v IS NOT NULL AND (v <> trunc(v) OR v < 0 OR v > 1000000000) THEN
    RAISE EXCEPTION 'kind setting % must be a whole number from 0 to 1000000000, got %', field, left(v::text, 40)
      USING ERRCODE = '22023';
  END IF;
  RETURN v::int;
END $$;

-- A duration setting in seconds, in [0, 1e9] (make_interval wraps around on huge values); NULL
-- when absent. The error names the field.
CREATE FUNCTION docket.setting_seconds(settings jsonb, field text) RETURNS interval
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v numeric := docket.setting(settings, field, 'number')::text::numeric;
BEGIN
  IF v IS NOT NULL AND (v < 0 OR v > 1000000000) THEN
    RAISE EXCEPTION 'kind setting % must be a number of seconds from 0 to 1000000000, got %', field, left(v::text, 40)
      USING ERRCODE = '22023';
  END IF;
  RETURN make_interval(secs => v::float8);
END $$;

-- A list-of-strings setting (at most 100 entries); NULL when absent. The error names the field.
CREATE FUNCTION docket.setting_texts(settings jsonb, field text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v jsonb := docket.setting(settings, field, 'array');
BEGIN
  IF v IS NULL THEN RETURN NULL; END IF;
  IF jsonb_array_length(v) > 100 OR EXISTS (SELECT 1 FROM jsonb_array_elements(v) e WHERE jsonb_typeof(e) <> 'string') THEN
    RAISE EXCEPTION 'kind setting % must be a list of at most 100 strings', field USING ERRCODE = '22023';
  END IF;
  RETURN ARRAY(SELECT jsonb_array_elements_text(v));
END $$;

-- A worker's config seeds one kind's settings (a JSON object, see KindSettings in C++; an absent or
-- null field leaves the stored value, a field this function does not know is refused, naming it):
--  - kind; max_retries, crawl_collection, timeout_s, queue, retain_completed_s, retain_failed_s;
--  - max_running: stored as config_max_running; it becomes the quota only when no operator set one
--    (limit_source 'operator' holds until docket.reset_limit);
--  - rate, burst: docket.set_rate when rate is set (the TOML's rate applies at each start);
--  - partition, max_running_per_key, rate_per_key, burst_per_key: docket.seed_partition when
--    partition is set (an operator's keyed limits hold until docket.reset_limit);
--  - unique_by, unique_for_s, unique_states, result_ttl_s: docket.seed_kind_results when unique_by
--    or result_ttl_s is set (unique_by present sets the kind's derived key exactly).
-- Returns the quota before and after with its source, and what happened to the keyed limits, so
-- the worker logs every change it makes and every TOML value it does not apply.
CREATE FUNCTION docket.seed_kind(settings jsonb, OUT max_running_before int, OUT max_running int,
                                 OUT limit_source text, OUT config_max_running int, OUT existed boolean,
                                 OUT partition_applied boolean, OUT partition_source text, OUT partition_now text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  known constant text[] := ARRAY['kind', 'max_retries', 'max_running', 'crawl_collection', 'timeout_s', 'queue',
                                 'retain_completed_s', 'retain_failed_s', 'rate', 'burst', 'partition',
                                 'max_running_per_key', 'rate_per_key', 'burst_per_key', 'unique_by', 'unique_for_s',
                                 'unique_states', 'result_ttl_s'];
  v_unknown text;
  v_kind text;
  v_quota int;
  v_unique boolean;  -- the settings set the kind's derived unique key
BEGIN
  IF settings IS NULL OR jsonb_typeof(settings) <> 'object' THEN
    RAISE EXCEPTION 'kind settings must be a JSON object' USING ERRCODE = '22023';
  END IF;
  settings := jsonb_strip_nulls(settings);  -- a null field is an absent one: it leaves the stored value
  SELECT f INTO v_unknown FROM jsonb_object_keys(settings) f WHERE f <> ALL (known) ORDER BY f LIMIT 1;
  IF v_unknown IS NOT NULL THEN
    RAISE EXCEPTION 'kind setting % is not one docket.seed_kind knows (%)', left(v_unknown, 64), array_to_string(known, ', ')
      USING ERRCODE = '22023';
  END IF;
  v_kind := docket.setting(settings, 'kind', 'string') #>> '{}';
  PERFORM docket.check_name('kind', v_kind);
  v_quota := docket.setting_int(settings, 'max_running');

  SELECT k.max_running INTO max_running_before FROM docket.kinds k WHERE k.kind = v_kind;
  existed := FOUND;
  INSERT INTO docket.kinds AS k (kind, max_retries, max_running, config_max_running, limit_source, crawl_collection,
                                 timeout, queue, retain_completed, retain_failed, seen_at)
  VALUES (v_kind, docket.setting_int(settings, 'max_retries'), v_quota, v_quota,
          CASE WHEN v_quota IS NOT NULL THEN 'config' END, docket.setting(settings, 'crawl_collection', 'string') #>> '{}',
          docket.setting_seconds(settings, 'timeout_s'), docket.setting(settings, 'queue', 'string') #>> '{}',
          docket.setting_seconds(settings, 'retain_completed_s'), docket.setting_seconds(settings, 'retain_failed_s'), now())
  ON CONFLICT (kind) DO UPDATE
     SET max_retries = coalesce(excluded.max_retries, k.max_retries),
         config_max_running = coalesce(excluded.config_max_running, k.config_max_running),
         max_running = CASE WHEN k.limit_source = 'operator' THEN k.max_running
                            ELSE coalesce(excluded.max_running, k.max_running) END,
         limit_source = CASE WHEN k.limit_source = 'operator' THEN k.limit_source
                             WHEN excluded.max_running IS NOT NULL THEN 'config' ELSE k.limit_source END,
         crawl_collection = coalesce(excluded.crawl_collection, k.crawl_collection),
         timeout = coalesce(excluded.timeout, k.timeout),
         queue = coalesce(excluded.queue, k.queue),
         retain_completed = coalesce(excluded.retain_completed, k.retain_completed),
         retain_failed = coalesce(excluded.retain_failed, k.retain_failed),
         seen_at = now(),
         updated_at = now()
  RETURNING k.max_running, k.limit_source, k.config_max_running INTO max_running, limit_source, config_max_running;

  -- A burst without a rate, keyed limits without a partition, unique settings without unique_by:
  -- refused by the functions below (or here), never silently dropped.
  IF docket.setting(settings, 'rate', 'string') IS NOT NULL OR settings ? 'burst' THEN
    PERFORM docket.set_rate(v_kind, settings ->> 'rate', docket.setting_int(settings, 'burst'));
  END IF;

  IF docket.setting(settings, 'partition', 'string') IS NULL THEN
    SELECT f INTO v_unknown FROM unnest(ARRAY['max_running_per_key', 'rate_per_key', 'burst_per_key']) f
     WHERE settings ? f ORDER BY f LIMIT 1;
    IF v_unknown IS NOT NULL THEN
      RAISE EXCEPTION 'kind setting % needs a partition', v_unknown USING ERRCODE = '22023';
    END IF;
  ELSE
    SELECT s.applied, s.source, s.partition_now INTO partition_applied, partition_source, partition_now
      FROM docket.seed_partition(v_kind, settings ->> 'partition', docket.setting_int(settings, 'max_running_per_key'),
                                 docket.setting(settings, 'rate_per_key', 'string') #>> '{}',
                                 docket.setting_int(settings, 'burst_per_key')) s;
  END IF;

  v_unique := settings ?| ARRAY['unique_by', 'unique_for_s', 'unique_states'];
  IF v_unique OR settings ? 'result_ttl_s' THEN
    PERFORM docket.seed_kind_results(v_kind, v_unique,
                                     docket.setting_texts(settings, 'unique_by'), docket.setting_seconds(settings, 'unique_for_s'),
                                     docket.setting_texts(settings, 'unique_states'),
                                     docket.setting_seconds(settings, 'result_ttl_s'));
  END IF;
END $$;

-- docket.claim as in 0017, with its limited kinds chosen by docket.kind_limited (the line marked
-- 0024). A later migration that re-creates docket.claim starts from this one.
CREATE OR REPLACE FUNCTION docket.claim(p_worker uuid, p_queues text[], p_kinds text[], p_limit int)
RETURNS TABLE (id bigint, kind text, queue text, args jsonb, attempt int, max_retries int,
               priority smallint, run_at timestamptz, inserted_at timestamptz, unique_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_queues text[];
  v_open text[];      -- kinds without a limit
  v_limited text[];   -- kinds with a quota, a rate or a partition this worker handles
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
   WHERE d.kind = ANY (p_kinds) AND docket.kind_limited(d);  -- 0024

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
    IF k.partition IS NOT NULL THEN
      RETURN QUERY SELECT * FROM docket.claim_keyed(p_worker, v_queues, k, v_slots);
    ELSE
      RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, ARRAY[k.kind], v_slots);
    END IF;
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

-- The claims are pinned as in 0001 (CREATE OR REPLACE dropped docket.claim's settings): the keyed
-- passes are planned at each call with these settings, so they use the key index.
ALTER FUNCTION docket.claim(uuid, text[], text[], int) SET enable_seqscan = off;
ALTER FUNCTION docket.claim(uuid, text[], text[], int) SET enable_bitmapscan = off;
ALTER FUNCTION docket.claim(uuid, text[], text[], int) SET plan_cache_mode = force_generic_plan;

-- kind_limited stays an ordinary (inlinable) SQL function: SECURITY DEFINER would stop the planner
-- from inlining it into the open claim.
INSERT INTO docket.function_roles VALUES ('seed_kind', 'docket_worker'), ('seed_kind', 'docket_ops') ON CONFLICT DO NOTHING;

SELECT docket.apply_security();
