-- 0002_input_limits: the SQL API treats its arguments as hostile. Every field is checked with a
-- message that names it (jobs[3].priority); args nest at most 64 levels (docket::kMaxJsonDepth);
-- run_at is finite and within 1970-01-01 .. 2200-01-01 UTC; names follow one rule everywhere.
-- enqueue_many never answers a NULL id and takes unique keys in a fixed order, so concurrent
-- batches do not deadlock. Maintenance and ops queries survive any timestamp a row holds.

-- Names (kind, queue): the rule enqueue applies is the rule pause, resume and set_limit apply.
CREATE FUNCTION docket.check_name(field text, value text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF value IS NULL OR btrim(value) = '' OR length(value) > 200 OR value ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION '% must be a non-empty string of at most 200 printable characters', field
      USING ERRCODE = '22023';
  END IF;
END $$;

-- Timestamps callers give (run_at): finite and in [1970-01-01, 2200-01-01) UTC, the range every
-- Docket program can represent; NULL passes (it means now).
CREATE FUNCTION docket.check_time(field text, value timestamptz) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF value IS NOT NULL AND NOT (value >= '1970-01-01 00:00:00+00' AND value < '2200-01-01 00:00:00+00') THEN
    RAISE EXCEPTION '% must be between 1970-01-01T00:00:00Z and 2199-12-31T23:59:59Z, got %', field, value
      USING ERRCODE = '22023';
  END IF;
END $$;

-- Whether a JSON value nests arrays/objects deeper than 64 levels (the top level counts as one):
-- a container 64 levels below the top is the 65th. Bounded: the walk never goes below level 64.
CREATE FUNCTION docket.json_too_deep(value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT jsonb_path_exists(value, 'strict $.**{64} ? (@.type() == "object" || @.type() == "array")')
$$;

-- Seconds from t to now, NULL for an infinite t (which would make the subtraction raise).
CREATE FUNCTION docket.seconds_since(t timestamptz) RETURNS float8
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN isfinite(t) THEN extract(epoch FROM now() - t)::float8 END
$$;

-- The checks of one job, each error prefixed by `p_where` ('' or 'jobs[3].') and naming the field.
CREATE FUNCTION docket.check_job_fields(p_where text, kind text, args jsonb, queue text, priority int,
                                        max_retries int, unique_key text, run_at timestamptz) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
  PERFORM docket.check_name(p_where || 'kind', kind);
  PERFORM docket.check_name(p_where || 'queue', queue);
  IF args IS NULL OR jsonb_typeof(args) <> 'object' THEN
    RAISE EXCEPTION '%args must be a JSON object, got %', p_where, coalesce(jsonb_typeof(args), 'null')
      USING ERRCODE = '22023';
  END IF;
  IF pg_column_size(args) > 1048576 THEN
    RAISE EXCEPTION '%args is % bytes; the limit is 1 MiB', p_where, pg_column_size(args) USING ERRCODE = '54000';
  END IF;
  IF docket.json_too_deep(args) THEN
    RAISE EXCEPTION '%args nests arrays and objects deeper than 64 levels', p_where USING ERRCODE = '22023';
  END IF;
  IF priority IS NULL OR priority < 0 OR priority > 1000 THEN
    RAISE EXCEPTION '%priority must be between 0 (runs first) and 1000, got %', p_where, priority
      USING ERRCODE = '22023';
  END IF;
  IF max_retries IS NOT NULL AND max_retries < 0 THEN
    RAISE EXCEPTION '%max_retries must be >= 0, got %', p_where, max_retries USING ERRCODE = '22023';
  END IF;
  IF unique_key IS NOT NULL AND (unique_key = '' OR length(unique_key) > 1000) THEN
    RAISE EXCEPTION '%unique_key must be 1 to 1000 characters', p_where USING ERRCODE = '22023';
  END IF;
  PERFORM docket.check_time(p_where || 'run_at', run_at);
END $$;

-- docket.check_job_fields as one boolean expression (true: passes), so enqueue_many can check a
-- whole batch in one statement; only a batch that fails goes through check_job_fields, which
-- names the field. The hostile corpus test holds the two to the same rules.
CREATE FUNCTION docket.job_fields_ok(kind text, args jsonb, queue text, priority int, max_retries int,
                                     unique_key text, run_at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(btrim(kind) <> '' AND length(kind) <= 200 AND kind !~ '[[:cntrl:]]'
                  AND btrim(queue) <> '' AND length(queue) <= 200 AND queue !~ '[[:cntrl:]]'
                  AND jsonb_typeof(args) = 'object' AND pg_column_size(args) <= 1048576
                  AND NOT docket.json_too_deep(args)
                  AND priority BETWEEN 0 AND 1000
                  AND (max_retries IS NULL OR max_retries >= 0)
                  AND (unique_key IS NULL OR (unique_key <> '' AND length(unique_key) <= 1000))
                  AND (run_at IS NULL OR (run_at >= '1970-01-01 00:00:00+00' AND run_at < '2200-01-01 00:00:00+00')),
                  false)
$$;

-- Kept for callers of the released signature.
CREATE OR REPLACE FUNCTION docket.check_job(kind text, args jsonb, queue text, priority int, max_retries int,
                                           unique_key text) RETURNS void
LANGUAGE sql STABLE AS $$
  SELECT docket.check_job_fields('', kind, args, queue, priority, max_retries, unique_key, NULL)
$$;

-- A field of a JSON job as text: NULL when absent or null; a non-string is an error naming it.
CREATE FUNCTION docket.json_text_field(field text, value jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF value IS NULL OR jsonb_typeof(value) = 'null' THEN RETURN NULL; END IF;
  IF jsonb_typeof(value) <> 'string' THEN
    RAISE EXCEPTION '% must be a string, got %', field, jsonb_typeof(value) USING ERRCODE = '22023';
  END IF;
  RETURN value #>> '{}';
END $$;

-- A field of a JSON job as int: NULL when absent or null; else a whole number within int range.
CREATE FUNCTION docket.json_int_field(field text, value jsonb) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v numeric;
BEGIN
  IF value IS NULL OR jsonb_typeof(value) = 'null' THEN RETURN NULL; END IF;
  IF jsonb_typeof(value) <> 'number' THEN
    RAISE EXCEPTION '% must be an integer, got %', field, jsonb_typeof(value) USING ERRCODE = '22023';
  END IF;
  v := value::numeric;
  IF v <> trunc(v) OR v < -2147483648 OR v > 2147483647 THEN
    RAISE EXCEPTION '% must be an integer within 32 bits, got %', field, left(value::text, 40) USING ERRCODE = '22023';
  END IF;
  RETURN v::int;
END $$;

-- A field of a JSON job as a timestamp: NULL when absent or null; else a string PostgreSQL reads
-- as timestamptz, in the documented range.
CREATE FUNCTION docket.json_time_field(field text, value jsonb) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v timestamptz;
BEGIN
  IF value IS NULL OR jsonb_typeof(value) = 'null' THEN RETURN NULL; END IF;
  IF jsonb_typeof(value) <> 'string' THEN
    RAISE EXCEPTION '% must be an RFC 3339 timestamp string, got %', field, jsonb_typeof(value) USING ERRCODE = '22023';
  END IF;
  BEGIN
    v := (value #>> '{}')::timestamptz;
  EXCEPTION WHEN data_exception THEN
    RAISE EXCEPTION '% must be an RFC 3339 timestamp like 2026-11-21T10:00:00Z, got "%"', field,
      left(value #>> '{}', 60) USING ERRCODE = '22023';
  END;
  PERFORM docket.check_time(field, v);
  RETURN v;
END $$;

-- enqueue_job as released, with run_at checked (finite, in range) and errors naming the field.
CREATE OR REPLACE FUNCTION docket.enqueue_job(kind text, args jsonb DEFAULT '{}', queue text DEFAULT 'default',
                                              priority int DEFAULT 0, run_at timestamptz DEFAULT now(),
                                              max_retries int DEFAULT NULL, unique_key text DEFAULT NULL,
                                              OUT id bigint, OUT created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_run_at timestamptz := coalesce(enqueue_job.run_at, now());
  v_collection text;
  v_key text := enqueue_job.unique_key;
BEGIN
  PERFORM docket.check_job_fields('', kind, args, queue, priority, max_retries, unique_key, v_run_at);
  SELECT k.crawl_collection INTO v_collection FROM docket.kinds k WHERE k.kind = enqueue_job.kind;
  IF v_collection IS NOT NULL THEN
    v_key := coalesce(v_key, 'crawl:' || v_collection);
  END IF;
  FOR i IN 1..10 LOOP
    INSERT INTO docket.jobs AS j (kind, args, queue, priority, run_at, max_retries, unique_key, state)
    VALUES (enqueue_job.kind, enqueue_job.args, enqueue_job.queue, enqueue_job.priority, v_run_at,
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

-- Bulk enqueue: one call for a whole JSON array of jobs (fields as in enqueue), honouring
-- unique_key: a live duplicate, also one earlier in the same batch, yields that job's id with
-- created = false. Results come back in input order, one per input, never a NULL id.
-- Every job is checked first (unknown fields, types, ranges), errors naming jobs[i].field.
-- Keyed jobs are inserted in unique_key order, so batches sharing keys in any order wait for
-- each other instead of deadlocking. A duplicate whose live holder finished before we could read
-- its id is inserted again (up to 10 rounds, as docket.enqueue does).
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
                   coalesce(e.item ->> 'queue', 'default') AS queue, coalesce((e.item ->> 'priority')::int, 0) AS priority,
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
    v_queue[i] := coalesce(docket.json_text_field(v_where || 'queue', v_item -> 'queue'), 'default');
    v_priority[i] := coalesce(docket.json_int_field(v_where || 'priority', v_item -> 'priority'), 0);
    v_retries[i] := docket.json_int_field(v_where || 'max_retries', v_item -> 'max_retries');
    v_key[i] := docket.json_text_field(v_where || 'unique_key', v_item -> 'unique_key');
    v_run_at[i] := docket.json_time_field(v_where || 'run_at', v_item -> 'run_at');
    PERFORM docket.check_job_fields(v_where, v_kind[i], v_args[i], v_queue[i], v_priority[i], v_retries[i], v_key[i],
                                    v_run_at[i]);
  END LOOP;
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

-- As released, but one row per input even if a job vanished meanwhile (job NULL), so callers
-- can match answers to inputs by position.
CREATE OR REPLACE FUNCTION docket.enqueue_many_jobs(jobs jsonb) RETURNS TABLE (id bigint, created boolean, job jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_ids bigint[];
  v_created boolean[];
BEGIN
  SELECT array_agg(e.id ORDER BY e.ord), array_agg(e.created ORDER BY e.ord) INTO v_ids, v_created
    FROM docket.enqueue_many(jobs) WITH ORDINALITY AS e(id, created, ord);
  -- A new statement: its snapshot sees the rows enqueue_many just inserted.
  RETURN QUERY
    SELECT x.id, x.created, docket.job_json(j)
      FROM unnest(v_ids, v_created) WITH ORDINALITY AS x(id, created, ord)
      LEFT JOIN docket.jobs j ON j.id = x.id
     ORDER BY x.ord;
END $$;

-- A job as JSON for APIs. A column nested deeper than the limit (written by SQL around enqueue's
-- checks) is replaced by a note, so no reader has to parse it.
CREATE OR REPLACE FUNCTION docket.job_json(j docket.jobs) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT to_jsonb(j) || jsonb_build_object('max_retries', docket.max_retries_of(j.max_retries, j.kind))
         || CASE WHEN docket.json_too_deep(j.args) OR docket.json_too_deep(j.result) OR docket.json_too_deep(j.progress)
                   OR docket.json_too_deep(j.errors)
                 THEN jsonb_build_object(
                        'args', CASE WHEN docket.json_too_deep(j.args) THEN '{"docket_error": "nested deeper than 64 levels; read it with SQL"}'::jsonb ELSE j.args END,
                        'result', CASE WHEN docket.json_too_deep(j.result) THEN '{"docket_error": "nested deeper than 64 levels; read it with SQL"}'::jsonb ELSE j.result END,
                        'progress', CASE WHEN docket.json_too_deep(j.progress) THEN '{"docket_error": "nested deeper than 64 levels; read it with SQL"}'::jsonb ELSE j.progress END,
                        'errors', CASE WHEN docket.json_too_deep(j.errors) THEN '[]'::jsonb ELSE j.errors END)
                 ELSE '{}'::jsonb END
$$;

-- Names: the rule of enqueue.
CREATE OR REPLACE FUNCTION docket.set_limit(kind text, max_running int) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  PERFORM docket.check_name('kind', kind);
  IF max_running IS NOT NULL AND max_running < 0 THEN
    RAISE EXCEPTION 'max_running must be >= 0 (or NULL to remove the limit), got %', max_running
      USING ERRCODE = '22023';
  END IF;
  INSERT INTO docket.kinds AS k (kind, max_running) VALUES (set_limit.kind, set_limit.max_running)
  ON CONFLICT ON CONSTRAINT kinds_pkey
  DO UPDATE SET max_running = excluded.max_running, updated_at = now();
  PERFORM pg_notify('docket_control', 'limit');
END $$;

CREATE OR REPLACE FUNCTION docket.pause(queue text) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  PERFORM docket.check_name('queue', queue);
  INSERT INTO docket.queues AS q (name, paused_at) VALUES (pause.queue, now())
  ON CONFLICT (name) DO UPDATE SET paused_at = coalesce(q.paused_at, now()), updated_at = now();
  PERFORM pg_notify('docket_control', 'pause');
END $$;

CREATE OR REPLACE FUNCTION docket.resume(queue text) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  PERFORM docket.check_name('queue', queue);
  UPDATE docket.queues q SET paused_at = NULL, updated_at = now() WHERE q.name = resume.queue;
  PERFORM pg_notify('docket_jobs', resume.queue);
END $$;

-- promote as released; the time to the next due job is clamped to [0, 1 day] so a run_at of
-- 'infinity' or '-infinity' (written around enqueue's checks) cannot make it raise.
CREATE OR REPLACE FUNCTION docket.promote(p_batch int DEFAULT 1000, OUT promoted int, OUT next_due_in float8)
LANGUAGE plpgsql AS $$
DECLARE
  v_queues text[];
BEGIN
  WITH moved AS (
    UPDATE docket.jobs j SET state = 'available'
     WHERE j.id = ANY (ARRAY(  -- by primary key, see prune
       SELECT d.id FROM docket.jobs d
        WHERE d.state IN ('scheduled', 'retryable') AND d.run_at <= now()
        ORDER BY d.run_at
        LIMIT p_batch
        FOR UPDATE SKIP LOCKED))
    RETURNING j.queue)
  SELECT count(*), array_agg(DISTINCT m.queue) INTO promoted, v_queues FROM moved m;
  PERFORM pg_notify('docket_jobs', q) FROM unnest(v_queues) q;
  SELECT extract(epoch FROM least(greatest(w.at, now()), now() + interval '1 day') - now())::float8 INTO next_due_in
    FROM (SELECT min(j.run_at) AS at FROM docket.jobs j WHERE j.state IN ('scheduled', 'retryable')) w
   WHERE w.at IS NOT NULL;
END $$;

-- finish_and_claim as released; the queue latency of a claimed job uses seconds_since.
CREATE OR REPLACE FUNCTION docket.finish_and_claim(p_worker uuid, p_ids bigint[], p_attempts int[], p_outcomes text[],
                                                   p_delays float8[], p_results jsonb[], p_errors text[],
                                                   p_max_retries int[], p_queues text[], p_kinds text[], p_limit int)
RETURNS TABLE (id bigint, claimed boolean, state text, kind text, queue text, args text, attempt int,
               max_retries int, priority smallint, unique_key text, queue_latency_s float8)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
    UPDATE docket.jobs j
       SET state = docket.next_state(u.outcome, j.attempt, u.max_retries, j.cancel_requested_at IS NOT NULL),
           finished_at = CASE WHEN docket.next_state(u.outcome, j.attempt, u.max_retries,
                                                     j.cancel_requested_at IS NOT NULL)
                                   IN ('completed', 'failed', 'cancelled') THEN now() END,
           run_at = CASE WHEN u.outcome IN ('retry', 'snooze') THEN now() + make_interval(secs => u.delay)
                         WHEN u.outcome = 'release' THEN now()
                         ELSE j.run_at END,
           attempt = CASE WHEN u.outcome IN ('snooze', 'release') THEN j.attempt - 1 ELSE j.attempt END,
           result = CASE WHEN u.outcome = 'complete' THEN u.result ELSE j.result END,
           errors = CASE WHEN u.error IS NULL THEN j.errors
                         ELSE j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', now(),
                                                                               'error', u.error)) END
      FROM unnest(p_ids, p_attempts, p_outcomes, p_delays, p_results, p_errors, p_max_retries)
           AS u(id, attempt, outcome, delay, result, error, max_retries)
     CROSS JOIN LATERAL (  -- by primary key, locked, then by row address: see jobs_running_idx
           SELECT k.ctid AS row FROM docket.jobs k
            WHERE k.id = u.id AND k.state IS NOT DISTINCT FROM 'running' AND k.worker = p_worker
              AND k.attempt = u.attempt
              FOR UPDATE) k
     WHERE j.ctid = k.row
    RETURNING j.id, false, j.state::text, NULL::text, NULL::text, NULL::text, NULL::int, NULL::int, NULL::smallint,
              NULL::text, NULL::float8;
  IF p_limit > 0 THEN
    RETURN QUERY
      SELECT c.id, true, 'running'::text, c.kind, c.queue, c.args::text, c.attempt, c.max_retries, c.priority,
             c.unique_key, docket.seconds_since(greatest(c.run_at, c.inserted_at))
        FROM docket.claim(p_worker, p_queues, p_kinds, p_limit) c;
  END IF;
END $$;

-- Per queue, as released; the oldest job's age is NULL rather than an error for an infinite run_at.
CREATE OR REPLACE VIEW docket.queue_summary AS
  WITH names AS (SELECT DISTINCT j.queue AS name FROM docket.jobs j
                 UNION SELECT q.name FROM docket.queues q)
  SELECT n.name AS queue,
         (SELECT count(*) FROM docket.jobs j WHERE j.queue = n.name AND j.state = 'available') AS available,
         (SELECT count(*) FROM docket.jobs j WHERE j.queue = n.name AND j.state = 'running') AS running,
         (SELECT count(*) FROM docket.jobs j WHERE j.queue = n.name AND j.state IN ('scheduled', 'retryable')) AS waiting,
         (SELECT min(j.run_at) FROM docket.jobs j WHERE j.queue = n.name AND j.state = 'available') AS oldest_available_at,
         docket.seconds_since((SELECT min(j.run_at) FROM docket.jobs j
                                WHERE j.queue = n.name AND j.state = 'available')) AS oldest_available_age_s,
         q.paused_at IS NOT NULL AS paused
    FROM names n LEFT JOIN docket.queues q ON q.name = n.name;

-- CREATE OR REPLACE drops a function's settings: pin the replaced ones' plans again (see 0001).
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'docket.enqueue_job(text, jsonb, text, int, timestamptz, int, text)'::regprocedure,
    'docket.enqueue_many(jsonb)'::regprocedure,
    'docket.enqueue_many_jobs(jsonb)'::regprocedure,
    'docket.promote(int)'::regprocedure,
    'docket.finish_and_claim(uuid, bigint[], int[], text[], float8[], jsonb[], text[], int[], text[], text[], int)'::regprocedure]
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET enable_seqscan = off', f);
    EXECUTE format('ALTER FUNCTION %s SET enable_bitmapscan = off', f);
  END LOOP;
  ALTER FUNCTION docket.finish_and_claim(uuid, bigint[], int[], text[], float8[], jsonb[], text[], int[], text[],
                                         text[], int)
    SET plan_cache_mode = force_generic_plan;
END $$;
