-- 0007_operator_truth: what operators see is true (issue 11).
--   * A kind's settings now record where they came from: the default queue its enqueues land in
--     (`[kinds.X] queue`), the quota's source (an operator's docket.set_limit survives worker
--     restarts until docket.reset_limit; a worker's TOML only seeds a kind without one), and its
--     retention (`retain_completed`, `retain_failed`), so every worker prunes by the same rule.
--   * Opt-in strict mode (the setting docket.strict_kinds, e.g. ALTER DATABASE app SET
--     docket.strict_kinds = on) refuses kinds no worker ever registered, naming the field.
--   * docket.unserved_reason(kind, queue): why no live worker would run such a job (NULL: one
--     would). Enqueue answers carry it as a warning; it is not on docket.enqueue's own path.

ALTER TABLE docket.kinds
  ADD COLUMN IF NOT EXISTS queue text
    CONSTRAINT kinds_queue_check CHECK (queue IS NULL OR (btrim(queue) <> '' AND length(queue) <= 200 AND queue !~ '[[:cntrl:]]')),
  ADD COLUMN IF NOT EXISTS config_max_running int
    CONSTRAINT kinds_config_max_running_check CHECK (config_max_running IS NULL OR config_max_running >= 0),
  ADD COLUMN IF NOT EXISTS limit_source text
    CONSTRAINT kinds_limit_source_check CHECK (limit_source IN ('config', 'operator')),
  ADD COLUMN IF NOT EXISTS retain_completed interval
    CONSTRAINT kinds_retain_completed_check CHECK (retain_completed IS NULL OR retain_completed >= interval '0'),
  ADD COLUMN IF NOT EXISTS retain_failed interval
    CONSTRAINT kinds_retain_failed_check CHECK (retain_failed IS NULL OR retain_failed >= interval '0'),
  ADD COLUMN IF NOT EXISTS seen_at timestamptz;  -- last time a starting worker registered the kind

COMMENT ON COLUMN docket.kinds.queue IS 'queue of enqueues that name none (NULL: default)';
COMMENT ON COLUMN docket.kinds.config_max_running IS 'max_running of the workers'' TOML (seeds max_running unless an operator set it)';
COMMENT ON COLUMN docket.kinds.limit_source IS 'who set max_running: config (a worker''s TOML) or operator (set_limit); NULL: nobody';

-- Quotas set before this migration behave as before it: a worker's TOML may replace them.
UPDATE docket.kinds SET limit_source = 'config', config_max_running = max_running WHERE max_running IS NOT NULL;
-- Kinds live workers run are registered (a worker registers its kinds at start from now on).
INSERT INTO docket.kinds AS k (kind, seen_at)
SELECT DISTINCT unnest(w.kinds), now() FROM docket.workers w WHERE w.dead_at IS NULL
ON CONFLICT (kind) DO UPDATE SET seen_at = now();

-- Fleet-wide defaults, one row: the retention of kinds that set none.
CREATE TABLE docket.settings (
  id               boolean PRIMARY KEY DEFAULT true CHECK (id),
  retain_completed interval NOT NULL DEFAULT '24 hours' CHECK (retain_completed >= interval '0'),
  retain_failed    interval NOT NULL DEFAULT '7 days' CHECK (retain_failed >= interval '0'),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO docket.settings DEFAULT VALUES;

-- The pruner walks each kind's finished rows by age (a kind's short retention must not walk
-- every other kind's history).
CREATE INDEX jobs_finished_kind_idx ON docket.jobs (kind, state, finished_at)
  WHERE state IN ('completed', 'failed', 'cancelled');
-- Live workers, for the unserved-work check of every enqueue answer (heartbeats stay HOT updates:
-- no indexed column changes on a heartbeat).
CREATE INDEX workers_live_idx ON docket.workers (started_at) WHERE dead_at IS NULL;

-- Whether strict mode is on: the setting docket.strict_kinds (database, role or session level).
-- A value other than on/off is an error naming the setting, not a silent off.
CREATE FUNCTION docket.strict_kinds() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v text := lower(btrim(coalesce(current_setting('docket.strict_kinds', true), '')));
BEGIN
  IF v IN ('', 'off', 'false', 'no', '0') THEN RETURN false; END IF;
  IF v IN ('on', 'true', 'yes', '1') THEN RETURN true; END IF;
  RAISE EXCEPTION 'setting docket.strict_kinds must be on or off, got "%"', left(v, 40) USING ERRCODE = '22023';
END $$;

-- Strict mode's refusal of a kind no worker ever registered; `field` names it (kind, jobs[3].kind).
CREATE FUNCTION docket.check_kind_known(field text, kind text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF docket.strict_kinds() AND NOT EXISTS (SELECT 1 FROM docket.kinds k WHERE k.kind = check_kind_known.kind AND k.seen_at IS NOT NULL) THEN
    RAISE EXCEPTION '% "%" is not run by any worker that ever started (docket.kinds) and docket.strict_kinds is on: check the name, or start a worker for it first',
      field, left(kind, 200) USING ERRCODE = '22023';
  END IF;
END $$;

-- Why no live worker would run a job of `kind` in `queue` (NULL queue: the kind's default queue),
-- or NULL when one would. One pass over the live workers (a handful of rows).
CREATE FUNCTION docket.unserved_reason(kind text, queue text DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE AS $$
  WITH q AS (
    SELECT coalesce(unserved_reason.queue, (SELECT k.queue FROM docket.kinds k WHERE k.kind = unserved_reason.kind),
                    'default') AS name),
  live AS (
    SELECT bool_or(unserved_reason.kind = ANY (w.kinds)) AS kind_ok,
           bool_or(q.name = ANY (w.queues)) AS queue_ok,
           bool_or(unserved_reason.kind = ANY (w.kinds) AND q.name = ANY (w.queues)) AS both_ok
      FROM docket.workers w, q
     WHERE w.dead_at IS NULL AND w.heartbeat_at >= now() - w.lease)
  SELECT CASE WHEN coalesce(l.both_ok, false) THEN NULL
              WHEN NOT coalesce(l.kind_ok, false) THEN 'no live worker runs kind ' || left(unserved_reason.kind, 200)
              WHEN NOT coalesce(l.queue_ok, false) THEN 'no live worker claims queue ' || left(q.name, 200)
              ELSE 'no live worker runs kind ' || left(unserved_reason.kind, 200) || ' in queue ' || left(q.name, 200) END
    FROM live l, q
$$;

-- enqueue_job as in 0002, plus: a NULL queue is the kind's queue (else 'default'), and strict
-- mode. One lookup of the kind's row serves the crawl dedup, the default queue and strict mode.
CREATE OR REPLACE FUNCTION docket.enqueue_job(kind text, args jsonb DEFAULT '{}', queue text DEFAULT NULL,
                                              priority int DEFAULT 0, run_at timestamptz DEFAULT now(),
                                              max_retries int DEFAULT NULL, unique_key text DEFAULT NULL,
                                              OUT id bigint, OUT created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_run_at timestamptz := coalesce(enqueue_job.run_at, now());
  v_collection text;
  v_queue text;
  v_key text := enqueue_job.unique_key;
BEGIN
  SELECT k.crawl_collection, k.queue INTO v_collection, v_queue FROM docket.kinds k WHERE k.kind = enqueue_job.kind;
  v_queue := coalesce(enqueue_job.queue, v_queue, 'default');
  PERFORM docket.check_job_fields('', kind, args, v_queue, priority, max_retries, unique_key, v_run_at);
  PERFORM docket.check_kind_known('kind', kind);
  IF v_collection IS NOT NULL THEN
    v_key := coalesce(v_key, 'crawl:' || v_collection);
  END IF;
  FOR i IN 1..10 LOOP
    INSERT INTO docket.jobs AS j (kind, args, queue, priority, run_at, max_retries, unique_key, state)
    VALUES (enqueue_job.kind, enqueue_job.args, v_queue, enqueue_job.priority, v_run_at,
            enqueue_job.max_retries, v_key,
            CASE WHEN v_run_at > now() THEN 'scheduled' ELSE 'available' END::docket.job_state)
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL
                               AND state IN ('available', 'scheduled', 'running', 'retryable')
    DO NOTHING
    RETURNING j.id INTO id;
    IF id IS NOT NULL THEN
      created := true;
      IF v_collection IS NOT NULL THEN
        BEGIN
          INSERT INTO docket.crawls (job_id, kind, collection) VALUES (id, enqueue_job.kind, v_collection);
        EXCEPTION WHEN unique_violation THEN
          RAISE EXCEPTION 'a crawl of collection % is already running; wait for it or cancel it', v_collection
            USING ERRCODE = '23505';
        END;
      END IF;
      RETURN;
    END IF;
    SELECT j.id INTO id FROM docket.jobs j
     WHERE j.unique_key = v_key AND j.state IN ('available', 'scheduled', 'running', 'retryable');
    IF id IS NOT NULL THEN
      created := false;
      RETURN;
    END IF;
  END LOOP;
  RAISE EXCEPTION 'unique_key % is contended; try again', v_key USING ERRCODE = '40001';
END $$;

-- The public enqueue: a queue not given (NULL) is the kind's queue, else 'default'.
CREATE OR REPLACE FUNCTION docket.enqueue(kind text, args jsonb DEFAULT '{}', queue text DEFAULT NULL,
                                          priority int DEFAULT 0, run_at timestamptz DEFAULT now(),
                                          max_retries int DEFAULT NULL, unique_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
  SELECT (docket.enqueue_job(kind, args, queue, priority, run_at, max_retries, unique_key)).id
$$;

-- Bulk enqueue as in 0002, plus: a job without a queue lands in its kind's queue (else
-- 'default'), and strict mode refuses the first unregistered kind (jobs[i].kind), writing nothing.
CREATE OR REPLACE FUNCTION docket.enqueue_many(jobs jsonb) RETURNS TABLE (id bigint, created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_n int;
  v_item jsonb;
  v_where text;
  v_field text;
  v_kind text[];
  v_args jsonb[];
  v_queue text[];
  v_priority int[];
  v_run_at timestamptz[];
  v_retries int[];
  v_key text[];
  v_ids bigint[];
  v_out bigint[];
  v_created boolean[];
  v_ord bigint;
  v_this_key text;
  v_id bigint;
  v_fast boolean;
  v_inserted bigint[];
  v_saved_out bigint[];
  v_saved_created boolean[];
  v_one_by_one boolean;
BEGIN
  IF jobs IS NULL OR jsonb_typeof(jobs) <> 'array' THEN
    RAISE EXCEPTION 'jobs must be a JSON array of job objects' USING ERRCODE = '22023';
  END IF;
  v_n := jsonb_array_length(jobs);
  IF v_n = 0 THEN RETURN; END IF;
  -- Fast path, one statement for the whole batch: every job well-formed (the common case). A
  -- cast that fails or any job that is not: the loop below checks them one by one and raises
  -- the first error, naming jobs[i].field.
  BEGIN
    SELECT array_agg(t.kind ORDER BY t.ord), array_agg(t.args ORDER BY t.ord), array_agg(t.queue ORDER BY t.ord),
           array_agg(t.priority ORDER BY t.ord), array_agg(t.run_at ORDER BY t.ord),
           array_agg(t.retries ORDER BY t.ord), array_agg(t.key ORDER BY t.ord),
           bool_and(t.shape_ok AND docket.job_fields_ok(t.kind, t.args, t.queue, t.priority, t.retries, t.key, t.run_at))
      INTO v_kind, v_args, v_queue, v_priority, v_run_at, v_retries, v_key, v_fast
      FROM (SELECT e.ord, e.item ->> 'kind' AS kind,
                   CASE WHEN jsonb_typeof(e.item -> 'args') = 'object' THEN e.item -> 'args' ELSE '{}' END AS args,
                   coalesce(e.item ->> 'queue', (SELECT k.queue FROM docket.kinds k WHERE k.kind = e.item ->> 'kind'), 'default') AS queue, coalesce((e.item ->> 'priority')::int, 0) AS priority,
                   (e.item ->> 'run_at')::timestamptz AS run_at, (e.item ->> 'max_retries')::int AS retries,
                   e.item ->> 'unique_key' AS key,
                   CASE WHEN jsonb_typeof(e.item) = 'object' THEN
                     (e.item - ARRAY['kind', 'args', 'queue', 'priority', 'run_at', 'max_retries', 'unique_key']) = '{}'
                     AND jsonb_typeof(e.item -> 'kind') = 'string'
                     AND coalesce(jsonb_typeof(e.item -> 'args'), 'null') IN ('object', 'null')
                     AND coalesce(jsonb_typeof(e.item -> 'queue'), 'null') IN ('string', 'null')
                     AND coalesce(jsonb_typeof(e.item -> 'priority'), 'null') IN ('number', 'null')
                     AND coalesce(jsonb_typeof(e.item -> 'max_retries'), 'null') IN ('number', 'null')
                     AND coalesce(jsonb_typeof(e.item -> 'unique_key'), 'null') IN ('string', 'null')
                     AND coalesce(jsonb_typeof(e.item -> 'run_at'), 'null') IN ('string', 'null')
                   ELSE false END AS shape_ok
              FROM jsonb_array_elements(jobs) WITH ORDINALITY AS e(item, ord)) t;
  EXCEPTION WHEN data_exception THEN
    v_fast := false;
  END;
  FOR i IN 1..v_n LOOP
    EXIT WHEN v_fast;
    v_item := jobs -> (i - 1);
    v_where := format('jobs[%s].', i - 1);
    IF jsonb_typeof(v_item) <> 'object' THEN
      RAISE EXCEPTION 'jobs[%] must be a JSON object, got %', i - 1, jsonb_typeof(v_item) USING ERRCODE = '22023';
    END IF;
    SELECT f INTO v_field FROM jsonb_object_keys(v_item) f
     WHERE f NOT IN ('kind', 'args', 'queue', 'priority', 'run_at', 'max_retries', 'unique_key') LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'jobs[%]: unknown field "%"; fields are kind, args, queue, priority, run_at, max_retries, unique_key',
        i - 1, left(v_field, 60) USING ERRCODE = '22023';
    END IF;
    IF NOT v_item ? 'kind' THEN
      RAISE EXCEPTION '%kind is required', v_where USING ERRCODE = '22023';
    END IF;
    v_kind[i] := docket.json_text_field(v_where || 'kind', v_item -> 'kind');
    v_args[i] := CASE WHEN jsonb_typeof(v_item -> 'args') IS DISTINCT FROM 'null' THEN v_item -> 'args' END;
    v_args[i] := coalesce(v_args[i], '{}');
    v_queue[i] := coalesce(docket.json_text_field(v_where || 'queue', v_item -> 'queue'),
                           (SELECT k.queue FROM docket.kinds k WHERE k.kind = v_kind[i]), 'default');
    v_priority[i] := coalesce(docket.json_int_field(v_where || 'priority', v_item -> 'priority'), 0);
    v_retries[i] := docket.json_int_field(v_where || 'max_retries', v_item -> 'max_retries');
    v_key[i] := docket.json_text_field(v_where || 'unique_key', v_item -> 'unique_key');
    v_run_at[i] := docket.json_time_field(v_where || 'run_at', v_item -> 'run_at');
    PERFORM docket.check_job_fields(v_where, v_kind[i], v_args[i], v_queue[i], v_priority[i], v_retries[i], v_key[i],
                                    v_run_at[i]);
  END LOOP;
  -- Strict mode: every kind must have been registered by a worker (nothing is written otherwise).
  IF docket.strict_kinds() THEN
    SELECT u.ord, u.kind INTO v_ord, v_this_key FROM unnest(v_kind) WITH ORDINALITY AS u(kind, ord)
     WHERE NOT EXISTS (SELECT 1 FROM docket.kinds k WHERE k.kind = u.kind AND k.seen_at IS NOT NULL)
     ORDER BY u.ord LIMIT 1;
    IF FOUND THEN
      PERFORM docket.check_kind_known(format('jobs[%s].kind', v_ord - 1), v_this_key);
    END IF;
  END IF;
  -- A crawl kind's job without a unique_key dedups on its collection.
  SELECT array_agg(coalesce(u.key, 'crawl:' || k.crawl_collection) ORDER BY u.ord) INTO v_key
    FROM unnest(v_kind, v_key) WITH ORDINALITY AS u(kind, key, ord)
    LEFT JOIN docket.kinds k ON k.kind = u.kind AND k.crawl_collection IS NOT NULL;
  -- Ids are drawn first, so each input knows its id whatever order the inserts run in.
  v_ids := ARRAY(SELECT nextval(pg_get_serial_sequence('docket.jobs', 'id')) FROM generate_series(1, v_n));
  v_out := array_fill(NULL::bigint, ARRAY[v_n]);
  v_created := array_fill(false, ARRAY[v_n]);
  -- Jobs without a key cannot conflict: one statement.
  INSERT INTO docket.jobs AS j (id, kind, args, queue, priority, run_at, max_retries, state)
  OVERRIDING SYSTEM VALUE
  SELECT v_ids[u.ord], u.kind, u.args, u.queue, u.priority, coalesce(u.run_at, now()), u.retries,
         CASE WHEN coalesce(u.run_at, now()) > now() THEN 'scheduled' ELSE 'available' END::docket.job_state
    FROM unnest(v_kind, v_args, v_queue, v_priority, v_run_at, v_retries, v_key) WITH ORDINALITY
         AS u(kind, args, queue, priority, run_at, retries, key, ord)
   WHERE u.key IS NULL
   ORDER BY u.ord;
  SELECT array_agg(CASE WHEN u.key IS NULL THEN v_ids[u.ord] END ORDER BY u.ord),
         array_agg(u.key IS NULL ORDER BY u.ord)
    INTO v_out, v_created
    FROM unnest(v_key) WITH ORDINALITY AS u(key, ord);
  -- Keyed jobs in one statement, in key order: a batch waits only for keys ordered after every
  -- key it holds, so batches sharing keys in any order never deadlock. If a duplicate's live
  -- holder finished before we could read its id, that key must be inserted again, which could
  -- wait for a key ordered before keys we now hold: undo the statement (its subtransaction
  -- releases every key) and take the keys one at a time, in key order, below.
  -- (The block is a subtransaction, with an xid of its own once it writes: entered only when the
  -- batch has keyed jobs, i.e. some id is still to be found.)
  v_saved_out := v_out;
  v_saved_created := v_created;
  v_one_by_one := false;
  IF array_position(v_out, NULL) IS NOT NULL THEN
    BEGIN
      WITH ins AS (
        INSERT INTO docket.jobs AS j (id, kind, args, queue, priority, run_at, max_retries, unique_key, state)
        OVERRIDING SYSTEM VALUE
        SELECT v_ids[u.ord], u.kind, u.args, u.queue, u.priority, coalesce(u.run_at, now()), u.retries, u.key,
               CASE WHEN coalesce(u.run_at, now()) > now() THEN 'scheduled' ELSE 'available' END::docket.job_state
          FROM unnest(v_kind, v_args, v_queue, v_priority, v_run_at, v_retries, v_key) WITH ORDINALITY
               AS u(kind, args, queue, priority, run_at, retries, key, ord)
         WHERE u.key IS NOT NULL
         ORDER BY u.key, u.ord
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'running', 'retryable')
        DO NOTHING
        RETURNING j.id)
      SELECT array_agg(ins.id) INTO v_inserted FROM ins;
      SELECT array_agg(coalesce(v_out[a.ord], m.id) ORDER BY a.ord),
             array_agg(v_created[a.ord] OR m.id IS NOT NULL ORDER BY a.ord)
        INTO v_out, v_created
        FROM unnest(v_ids) WITH ORDINALITY AS a(id, ord) LEFT JOIN unnest(v_inserted) AS m(id) ON m.id = a.id;
      -- A new statement: its snapshot sees a duplicate that a concurrent transaction committed
      -- while our insert waited on it, and one earlier in this batch.
      SELECT array_agg(coalesce(v_out[a.ord],
                                (SELECT j.id FROM docket.jobs j
                                  WHERE j.unique_key = v_key[a.ord]
                                    AND j.state IN ('available', 'scheduled', 'running', 'retryable'))) ORDER BY a.ord)
        INTO v_out FROM generate_series(1, v_n) AS a(ord);
      IF array_position(v_out, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'a unique_key''s holder finished meanwhile' USING ERRCODE = 'DK001';
      END IF;
    EXCEPTION WHEN SQLSTATE 'DK001' THEN
      v_out := v_saved_out;
      v_created := v_saved_created;
      v_one_by_one := true;
    END;
  END IF;
  FOR v_ord, v_this_key IN
    SELECT u.ord, u.key FROM unnest(v_key) WITH ORDINALITY AS u(key, ord)
     WHERE v_one_by_one AND u.key IS NOT NULL ORDER BY u.key, u.ord
  LOOP
    FOR round IN 1..10 LOOP
      INSERT INTO docket.jobs AS j (id, kind, args, queue, priority, run_at, max_retries, unique_key, state)
      OVERRIDING SYSTEM VALUE
      VALUES (v_ids[v_ord], v_kind[v_ord], v_args[v_ord], v_queue[v_ord], v_priority[v_ord],
              coalesce(v_run_at[v_ord], now()), v_retries[v_ord], v_this_key,
              CASE WHEN coalesce(v_run_at[v_ord], now()) > now() THEN 'scheduled' ELSE 'available' END::docket.job_state)
      ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'running', 'retryable')
      DO NOTHING
      RETURNING j.id INTO v_id;
      IF v_id IS NOT NULL THEN
        v_created[v_ord] := true;
      ELSE
        -- A new statement: its snapshot sees a duplicate that a concurrent transaction committed
        -- while our insert waited on it, and one earlier in this batch.
        SELECT j.id INTO v_id FROM docket.jobs j
         WHERE j.unique_key = v_this_key AND j.state IN ('available', 'scheduled', 'running', 'retryable');
      END IF;
      v_out[v_ord] := v_id;
      EXIT WHEN v_id IS NOT NULL;
    END LOOP;
    IF v_out[v_ord] IS NULL THEN
      RAISE EXCEPTION 'jobs[%].unique_key % is contended; try again', v_ord - 1, v_this_key USING ERRCODE = '40001';
    END IF;
  END LOOP;

  INSERT INTO docket.crawls (job_id, kind, collection)
  SELECT v_out[a.ord], v_kind[a.ord], k.crawl_collection
    FROM generate_series(1, v_n) AS a(ord)
    JOIN docket.kinds k ON k.kind = v_kind[a.ord] AND k.crawl_collection IS NOT NULL
   WHERE v_created[a.ord];

  RETURN QUERY SELECT o.id, o.created FROM unnest(v_out, v_created) WITH ORDINALITY AS o(id, created, ord)
                ORDER BY o.ord;
END $$;

-- A schedule without a queue enqueues into its kind's queue, like any enqueue without one.
CREATE OR REPLACE FUNCTION docket.schedule_enqueue(p_s docket.schedules, p_slot timestamptz, p_overlap text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_last docket.job_state;
  v_job record;
BEGIN
  -- A slot that has its job already (next_slot set back by hand) is not run twice.
  IF p_slot IS NOT NULL AND EXISTS (SELECT 1 FROM docket.jobs j WHERE j.schedule = p_s.name AND j.scheduled_for = p_slot) THEN
    RETURN NULL;
  END IF;
  IF p_s.last_job_id IS NOT NULL AND p_overlap <> 'allow' THEN
    SELECT j.state INTO v_last FROM docket.jobs j WHERE j.id = p_s.last_job_id;
    IF v_last IN ('available', 'scheduled', 'running', 'retryable') THEN
      IF p_overlap = 'skip' THEN
        RETURN NULL;
      END IF;
      PERFORM docket.cancel(p_s.last_job_id);  -- replace
    END IF;
  END IF;
  SELECT * INTO v_job FROM docket.enqueue_job(p_s.kind, p_s.args, p_s.queue, p_s.priority,
                                              now(), p_s.max_retries, NULL);
  IF NOT v_job.created THEN
    RETURN NULL;  -- e.g. the crawl of this collection is still running
  END IF;
  UPDATE docket.jobs j SET schedule = p_s.name, scheduled_for = p_slot WHERE j.id = v_job.id;
  RETURN v_job.id;
END $$;

-- An operator's quota: it holds until docket.reset_limit, whatever the workers' TOML says.
CREATE OR REPLACE FUNCTION docket.set_limit(kind text, max_running int) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  PERFORM docket.check_name('kind', kind);
  IF max_running IS NOT NULL AND max_running < 0 THEN
    RAISE EXCEPTION 'max_running must be >= 0 (or NULL to remove the limit), got %', max_running
      USING ERRCODE = '22023';
  END IF;
  INSERT INTO docket.kinds AS k (kind, max_running, limit_source) VALUES (set_limit.kind, set_limit.max_running, 'operator')
  ON CONFLICT ON CONSTRAINT kinds_pkey
  DO UPDATE SET max_running = excluded.max_running, limit_source = 'operator', updated_at = now();
  PERFORM pg_notify('docket_control', 'limit');
END $$;

-- Clears an operator's quota: the kind goes back to its workers' TOML value (config_max_running),
-- or no limit. Returns whether an operator value was cleared.
CREATE FUNCTION docket.reset_limit(kind text) RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_found boolean;
BEGIN
  PERFORM docket.check_name('kind', kind);
  UPDATE docket.kinds k
     SET max_running = k.config_max_running,
         limit_source = CASE WHEN k.config_max_running IS NOT NULL THEN 'config' END, updated_at = now()
   WHERE k.kind = reset_limit.kind AND k.limit_source = 'operator';
  v_found := FOUND;
  PERFORM pg_notify('docket_control', 'limit');
  RETURN v_found;
END $$;

-- Retention: kind NULL sets the fleet default (docket.settings); a kind's NULL value falls back to
-- the default. Durations must be >= 0.
CREATE FUNCTION docket.set_retention(kind text, retain_completed interval, retain_failed interval) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  IF retain_completed < interval '0' OR retain_failed < interval '0' THEN
    RAISE EXCEPTION 'retain_completed and retain_failed must be >= 0' USING ERRCODE = '22023';
  END IF;
  IF kind IS NULL THEN
    UPDATE docket.settings s SET retain_completed = coalesce(set_retention.retain_completed, s.retain_completed),
                                 retain_failed = coalesce(set_retention.retain_failed, s.retain_failed), updated_at = now();
    RETURN;
  END IF;
  PERFORM docket.check_name('kind', kind);
  INSERT INTO docket.kinds AS k (kind, retain_completed, retain_failed)
  VALUES (set_retention.kind, set_retention.retain_completed, set_retention.retain_failed)
  ON CONFLICT ON CONSTRAINT kinds_pkey
  DO UPDATE SET retain_completed = excluded.retain_completed, retain_failed = excluded.retain_failed, updated_at = now();
END $$;

-- Each kind's retention, as the pruner applies it (kinds with finished jobs or settings).
CREATE VIEW docket.kind_retention AS
  SELECT k.kind, coalesce(k.retain_completed, s.retain_completed) AS retain_completed,
         coalesce(k.retain_failed, s.retain_failed) AS retain_failed,
         k.retain_completed IS NULL AND k.retain_failed IS NULL AS is_default
    FROM docket.kinds k CROSS JOIN docket.settings s;

-- Prune by the rule stored in the database: each kind's finished jobs past its own retention (else
-- the default in docket.settings), at most p_batch rows per call, and workers long dead. The kinds
-- are found by a skip scan of jobs_finished_kind_idx (one probe per kind), and each kind's rows by
-- age in the same index. Replaces prune(interval, interval, int): a worker's own settings no
-- longer decide for the fleet.
DROP FUNCTION IF EXISTS docket.prune(interval, interval, int);
CREATE FUNCTION docket.prune(p_batch int DEFAULT 5000) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  v_n int;
  v_total int := 0;
  r record;
BEGIN
  FOR r IN
    WITH RECURSIVE ks(kind) AS (
      (SELECT j.kind FROM docket.jobs j WHERE j.state IN ('completed', 'failed', 'cancelled') ORDER BY j.kind LIMIT 1)
      UNION ALL
      SELECT (SELECT j.kind FROM docket.jobs j
               WHERE j.state IN ('completed', 'failed', 'cancelled') AND j.kind > ks.kind ORDER BY j.kind LIMIT 1)
        FROM ks WHERE ks.kind IS NOT NULL)
    SELECT ks.kind, coalesce(k.retain_completed, s.retain_completed) AS rc, coalesce(k.retain_failed, s.retain_failed) AS rf
      FROM ks CROSS JOIN docket.settings s LEFT JOIN docket.kinds k ON k.kind = ks.kind
     WHERE ks.kind IS NOT NULL
  LOOP
    EXIT WHEN v_total >= p_batch;
    DELETE FROM docket.jobs j WHERE j.id = ANY (ARRAY(
      SELECT x.id FROM docket.jobs x
       WHERE x.kind = r.kind AND x.state = 'completed' AND x.finished_at < now() - r.rc
       LIMIT p_batch - v_total FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_total := v_total + v_n;
    CONTINUE WHEN v_total >= p_batch;
    DELETE FROM docket.jobs j WHERE j.id = ANY (ARRAY(
      SELECT x.id FROM docket.jobs x
       WHERE x.kind = r.kind AND x.state IN ('failed', 'cancelled') AND x.finished_at < now() - r.rf
       LIMIT p_batch - v_total FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_total := v_total + v_n;
  END LOOP;
  DELETE FROM docket.workers w
   WHERE w.dead_at < now() - interval '1 day'
     AND NOT EXISTS (SELECT 1 FROM docket.jobs j WHERE j.state = 'running' AND j.worker = w.id);
  RETURN v_total;
END $$;

-- Running jobs per kind against the kind's quota, now with where the quota came from and the
-- workers' TOML value (columns may only be added at the end).
CREATE OR REPLACE VIEW docket.kind_limits AS
  WITH running AS (SELECT j.kind, count(*) AS running FROM docket.jobs j WHERE j.state = 'running' GROUP BY j.kind)
  SELECT coalesce(k.kind, r.kind) AS kind, k.max_running, coalesce(r.running, 0) AS running, k.max_retries,
         k.limit_source, k.config_max_running, k.queue
    FROM docket.kinds k FULL JOIN running r ON r.kind = k.kind;

-- The new API functions join the callers map of 0004 (the rest of apply_security is unchanged).
DO $$
DECLARE
  v_def text := pg_get_functiondef('docket.apply_security()'::regprocedure);
BEGIN
  v_def := replace(v_def, '"run_schedule_now": ["docket_ops"]',
                   '"run_schedule_now": ["docket_ops"],
    "reset_limit": ["docket_ops"],
    "set_retention": ["docket_ops"],
    "unserved_reason": ["docket_enqueuer", "docket_worker", "docket_ops"]');
  IF v_def NOT LIKE '%"reset_limit"%' THEN
    RAISE EXCEPTION 'apply_security has no callers entry for run_schedule_now to extend';
  END IF;
  EXECUTE v_def;
END $$;

SELECT docket.apply_security();
