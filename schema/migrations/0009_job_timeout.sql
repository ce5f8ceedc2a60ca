-- 0009_job_timeout: a job may carry its own run timeout, overriding its kind's (issue 13).
-- docket.enqueue, docket.enqueue_job and docket.enqueue_many take `timeout` (NULL: the kind's);
-- the worker stops a run at it as at the kind's. enqueue and enqueue_job are dropped and created
-- again with the new last parameter: adding a defaulted parameter with CREATE OR REPLACE would
-- leave the old signature behind as an ambiguous overload.

ALTER TABLE docket.jobs ADD COLUMN IF NOT EXISTS timeout interval;

-- Whether a job's timeout is acceptable: NULL (the kind's), or more than 0 and at most 365 days
-- (a worker's deadline is now + timeout on a 64-bit nanosecond clock).
CREATE FUNCTION docket.timeout_ok(p_timeout interval) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT p_timeout IS NULL
      OR (extract(epoch FROM p_timeout) > 0 AND extract(epoch FROM p_timeout) <= 365 * 86400)
$$;

-- docket.timeout_ok, raising an error that names `p_field` when it is not.
CREATE FUNCTION docket.check_timeout(p_field text, p_timeout interval) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF NOT docket.timeout_ok(p_timeout) THEN
    RAISE EXCEPTION '% must be more than 0 and at most 365 days, got %', p_field, p_timeout USING ERRCODE = '22023';
  END IF;
END $$;

-- A JSON job's timeout as an interval: a string ("30s", "10 minutes") or a number of seconds
-- (clamped to [-1, 1e9] first: make_interval wraps around on huge values); NULL when absent or null. Raises a data exception for anything else (enqueue_many's fast path
-- then checks job by job with json_timeout_field, which names the field).
CREATE FUNCTION docket.timeout_of(value jsonb) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN value IS NULL OR jsonb_typeof(value) = 'null' THEN NULL
              WHEN jsonb_typeof(value) = 'number'
                THEN make_interval(secs => least(greatest((value #>> '{}')::float8, -1), 1e9))
              ELSE (value #>> '{}')::interval END
$$;

-- docket.timeout_of, checked, with errors naming `field`.
CREATE FUNCTION docket.json_timeout_field(field text, value jsonb) RETURNS interval
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v interval;
BEGIN
  IF value IS NOT NULL AND jsonb_typeof(value) NOT IN ('string', 'number', 'null') THEN
    RAISE EXCEPTION '% must be a duration like "30s" or a number of seconds, got %', field, jsonb_typeof(value)
      USING ERRCODE = '22023';
  END IF;
  BEGIN
    v := docket.timeout_of(value);
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION '% must be a duration like "30s" or a number of seconds, got %', field, left(value #>> '{}', 60)
      USING ERRCODE = '22023';
  END;
  PERFORM docket.check_timeout(field, v);
  RETURN v;
END $$;

DROP FUNCTION docket.enqueue(text, jsonb, text, int, timestamptz, int, text);
DROP FUNCTION docket.enqueue_job(text, jsonb, text, int, timestamptz, int, text);

-- One job as in 0007 (a NULL queue is the kind's queue, strict mode), plus `timeout`: it
-- overrides the kind's run timeout for this job.
CREATE FUNCTION docket.enqueue_job(kind text, args jsonb DEFAULT '{}', queue text DEFAULT NULL,
                                              priority int DEFAULT 0, run_at timestamptz DEFAULT now(),
                                              max_retries int DEFAULT NULL, unique_key text DEFAULT NULL,
                                              timeout interval DEFAULT NULL, OUT id bigint, OUT created boolean)
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
  PERFORM docket.check_timeout('timeout', enqueue_job.timeout);
  PERFORM docket.check_kind_known('kind', kind);
  IF v_collection IS NOT NULL THEN
    v_key := coalesce(v_key, 'crawl:' || v_collection);
  END IF;
  FOR i IN 1..10 LOOP
    INSERT INTO docket.jobs AS j (kind, args, queue, priority, run_at, max_retries, unique_key, timeout, state)
    VALUES (enqueue_job.kind, enqueue_job.args, v_queue, enqueue_job.priority, v_run_at,
            enqueue_job.max_retries, v_key, enqueue_job.timeout,
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


-- The public enqueue: returns the job id (the existing job's id for a live duplicate unique_key);
-- a NULL queue is the kind's queue, else 'default'.
-- Works inside the caller's transaction: the job exists only if that transaction commits.
CREATE FUNCTION docket.enqueue(kind text, args jsonb DEFAULT '{}', queue text DEFAULT NULL,
                               priority int DEFAULT 0, run_at timestamptz DEFAULT now(),
                               max_retries int DEFAULT NULL, unique_key text DEFAULT NULL,
                               timeout interval DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
  SELECT (docket.enqueue_job(kind, args, queue, priority, run_at, max_retries, unique_key, timeout)).id
$$;

-- Bulk enqueue, as in 0007 (kind queues, strict mode), with a `timeout` field per job.
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
  v_timeout interval[];
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
           array_agg(t.retries ORDER BY t.ord), array_agg(t.key ORDER BY t.ord), array_agg(t.timeout ORDER BY t.ord),
           bool_and(t.shape_ok AND docket.job_fields_ok(t.kind, t.args, t.queue, t.priority, t.retries, t.key, t.run_at)
                    AND docket.timeout_ok(t.timeout))
      INTO v_kind, v_args, v_queue, v_priority, v_run_at, v_retries, v_key, v_timeout, v_fast
      FROM (SELECT e.ord, e.item ->> 'kind' AS kind,
                   CASE WHEN jsonb_typeof(e.item -> 'args') = 'object' THEN e.item -> 'args' ELSE '{}' END AS args,
                   coalesce(e.item ->> 'queue', (SELECT k.queue FROM docket.kinds k WHERE k.kind = e.item ->> 'kind'), 'default') AS queue, coalesce((e.item ->> 'priority')::int, 0) AS priority,
                   (e.item ->> 'run_at')::timestamptz AS run_at, (e.item ->> 'max_retries')::int AS retries,
                   e.item ->> 'unique_key' AS key, docket.timeout_of(e.item -> 'timeout') AS timeout,
                   CASE WHEN jsonb_typeof(e.item) = 'object' THEN
                     (e.item - ARRAY['kind', 'args', 'queue', 'priority', 'run_at', 'max_retries', 'unique_key',
                                     'timeout']) = '{}'
                     AND jsonb_typeof(e.item -> 'kind') = 'string'
                     AND coalesce(jsonb_typeof(e.item -> 'args'), 'null') IN ('object', 'null')
                     AND coalesce(jsonb_typeof(e.item -> 'queue'), 'null') IN ('string', 'null')
                     AND coalesce(jsonb_typeof(e.item -> 'priority'), 'null') IN ('number', 'null')
                     AND coalesce(jsonb_typeof(e.item -> 'max_retries'), 'null') IN ('number', 'null')
                     AND coalesce(jsonb_typeof(e.item -> 'unique_key'), 'null') IN ('string', 'null')
                     AND coalesce(jsonb_typeof(e.item -> 'run_at'), 'null') IN ('string', 'null')
                     AND coalesce(jsonb_typeof(e.item -> 'timeout'), 'null') IN ('string', 'number', 'null')
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
     WHERE f NOT IN ('kind', 'args', 'queue', 'priority', 'run_at', 'max_retries', 'unique_key', 'timeout') LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'jobs[%]: unknown field "%"; fields are kind, args, queue, priority, run_at, max_retries, unique_key, timeout',
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
    v_timeout[i] := docket.json_timeout_field(v_where || 'timeout', v_item -> 'timeout');
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
  INSERT INTO docket.jobs AS j (id, kind, args, queue, priority, run_at, max_retries, timeout, state)
  OVERRIDING SYSTEM VALUE
  SELECT v_ids[u.ord], u.kind, u.args, u.queue, u.priority, coalesce(u.run_at, now()), u.retries, u.timeout,
         CASE WHEN coalesce(u.run_at, now()) > now() THEN 'scheduled' ELSE 'available' END::docket.job_state
    FROM unnest(v_kind, v_args, v_queue, v_priority, v_run_at, v_retries, v_key, v_timeout) WITH ORDINALITY
         AS u(kind, args, queue, priority, run_at, retries, key, timeout, ord)
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
        INSERT INTO docket.jobs AS j (id, kind, args, queue, priority, run_at, max_retries, unique_key, timeout, state)
        OVERRIDING SYSTEM VALUE
        SELECT v_ids[u.ord], u.kind, u.args, u.queue, u.priority, coalesce(u.run_at, now()), u.retries, u.key,
               u.timeout,
               CASE WHEN coalesce(u.run_at, now()) > now() THEN 'scheduled' ELSE 'available' END::docket.job_state
          FROM unnest(v_kind, v_args, v_queue, v_priority, v_run_at, v_retries, v_key, v_timeout) WITH ORDINALITY
               AS u(kind, args, queue, priority, run_at, retries, key, timeout, ord)
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
      INSERT INTO docket.jobs AS j (id, kind, args, queue, priority, run_at, max_retries, unique_key, timeout, state)
      OVERRIDING SYSTEM VALUE
      VALUES (v_ids[v_ord], v_kind[v_ord], v_args[v_ord], v_queue[v_ord], v_priority[v_ord],
              coalesce(v_run_at[v_ord], now()), v_retries[v_ord], v_this_key, v_timeout[v_ord],
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

-- Running past its own timeout counts like running past its kind's.
CREATE OR REPLACE VIEW docket.stuck_jobs AS
  SELECT j.id, j.kind, j.queue, j.attempt, j.started_at, j.worker, w.name AS worker_name,
         w.heartbeat_at, now() - w.heartbeat_at AS heartbeat_age,
         CASE WHEN w.id IS NULL THEN 'its worker is unknown'
              WHEN w.dead_at IS NOT NULL OR w.heartbeat_at < now() - w.lease THEN 'its worker is dead (lease expired)'
              ELSE 'running past its timeout (' || coalesce(j.timeout, k.timeout, interval '30 minutes')::text || ')'
         END AS reason
    FROM docket.jobs j
    LEFT JOIN docket.workers w ON w.id = j.worker
    LEFT JOIN docket.kinds k ON k.kind = j.kind
   WHERE j.state = 'running'
     AND (w.id IS NULL OR w.dead_at IS NOT NULL OR w.heartbeat_at < now() - w.lease
          OR j.started_at < now() - coalesce(j.timeout, k.timeout, interval '30 minutes') - interval '1 minute');

-- The enqueue functions run as their owner with a pinned search_path (0004's roles).
SELECT docket.apply_security();
