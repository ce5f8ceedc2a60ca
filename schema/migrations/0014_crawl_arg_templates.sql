-- 0014_crawl_arg_templates: one crawl kind serves every entity (issue 12, "Also for the scraper").
-- A crawl kind's collection may name args of the job, `collection = "project_{args.project_id}"`,
-- evaluated here at enqueue, so crawl dedup ('crawl:' || collection) and the live items are per
-- entity: two crawls of project 7 dedup, projects 7 and 8 run side by side. The URL's {args.NAME}
-- is the worker's (percent-encoded there). Changes to the enqueue functions: only the collection
-- expression (docket.kinds.crawl_collection now holds the template).

-- The collection a crawl job of a kind whose collection is `template` crawls into: each
-- {args.a.b} replaced by args #> '{a,b}'. A value must be a string or a number (1 to 200 bytes, no
-- control characters), and the result a name like any collection (non-empty, at most 200
-- printable characters); otherwise 22023 naming the arg (`field` || '.a.b'). A template without
-- placeholders comes back as it is; `{...}` that is no placeholder stays literal (a worker's config
-- refuses those at load).
CREATE FUNCTION docket.crawl_collection_for(template text, args jsonb, field text DEFAULT 'args') RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  v_rest text := crawl_collection_for.template;
  v_out text := '';
  v_names text := '';
  v_at int;
  v_end int;
  v_name text;
  v_field text;
  v_value jsonb;
  v_text text;
BEGIN
  IF v_rest IS NULL OR strpos(v_rest, '{args.') = 0 THEN
    RETURN v_rest;
  END IF;
  LOOP
    v_at := strpos(v_rest, '{args.');
    EXIT WHEN v_at = 0;
    v_end := strpos(substr(v_rest, v_at), '}');
    EXIT WHEN v_end = 0;
    v_name := substr(v_rest, v_at + 6, v_end - 7);
    IF v_name !~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$' THEN
      v_out := v_out || substr(v_rest, 1, v_at);
      v_rest := substr(v_rest, v_at + 1);
      CONTINUE;
    END IF;
    v_field := crawl_collection_for.field || '.' || v_name;
    v_value := crawl_collection_for.args #> string_to_array(v_name, '.');
    IF v_value IS NULL THEN
      RAISE EXCEPTION '% is missing from the job''s args; the kind''s crawl collection "%" needs it', v_field,
        left(crawl_collection_for.template, 200) USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(v_value) NOT IN ('string', 'number') THEN
      RAISE EXCEPTION '% must be a string or a number (it names the crawl collection), got %', v_field,
        jsonb_typeof(v_value) USING ERRCODE = '22023';
    END IF;
    v_text := v_value #>> '{}';
    IF v_text = '' OR octet_length(v_text) > 200 OR v_text ~ '[[:cntrl:]]' THEN
      RAISE EXCEPTION '% must be 1 to 200 bytes without control characters (it names the crawl collection)', v_field
        USING ERRCODE = '22023';
    END IF;
    v_names := v_names || CASE WHEN v_names = '' THEN '' ELSE ', ' END || v_field;
    v_out := v_out || substr(v_rest, 1, v_at - 1) || v_text;
    v_rest := substr(v_rest, v_at + v_end);
  END LOOP;
  v_out := v_out || v_rest;
  IF btrim(v_out) = '' OR length(v_out) > 200 OR v_out ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'the crawl collection made from % must be a non-empty string of at most 200 printable characters, got "%..."',
      v_names, left(v_out, 60) USING ERRCODE = '22023';
  END IF;
  RETURN v_out;
END $$;

-- One job as in 0009; a crawl kind's collection may take {args.NAME} from the job's args.
CREATE OR REPLACE FUNCTION docket.enqueue_job(kind text, args jsonb DEFAULT '{}', queue text DEFAULT NULL,
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
  SELECT docket.crawl_collection_for(k.crawl_collection, enqueue_job.args), k.queue INTO v_collection, v_queue
    FROM docket.kinds k WHERE k.kind = enqueue_job.kind;
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

-- Bulk enqueue as in 0009; a crawl kind's collection may take {args.NAME} from each job's args.
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
  SELECT array_agg(coalesce(u.key, 'crawl:' || docket.crawl_collection_for(k.crawl_collection, u.args,
                                                                          format('jobs[%s].args', u.ord - 1)))
                   ORDER BY u.ord) INTO v_key
    FROM unnest(v_kind, v_key, v_args) WITH ORDINALITY AS u(kind, key, args, ord)
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
  SELECT v_out[a.ord], v_kind[a.ord], docket.crawl_collection_for(k.crawl_collection, v_args[a.ord],
                                                                 format('jobs[%s].args', a.ord - 1))
    FROM generate_series(1, v_n) AS a(ord)
    JOIN docket.kinds k ON k.kind = v_kind[a.ord] AND k.crawl_collection IS NOT NULL
   WHERE v_created[a.ord];

  RETURN QUERY SELECT o.id, o.created FROM unnest(v_out, v_created) WITH ORDINALITY AS o(id, created, ord)
                ORDER BY o.ord;
END $$;

-- Schedules of crawl kinds (docket.schedule as in 0006, plus the check of its args against the
-- kind's collection template; docket.schedule_enqueue as in 0007, plus the guard of the tick).
CREATE OR REPLACE FUNCTION docket.schedule(name text, cron text, kind text, args jsonb DEFAULT '{}', tz text DEFAULT 'UTC',
                                queue text DEFAULT NULL, spread interval DEFAULT NULL,
                                on_overlap text DEFAULT 'skip', on_missed text DEFAULT 'skip',
                                enabled boolean DEFAULT true, priority int DEFAULT 0, max_retries int DEFAULT NULL,
                                source text DEFAULT 'runtime')
RETURNS docket.schedules
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_next timestamptz;
  v_row docket.schedules;
BEGIN
  IF schedule.name IS NULL OR btrim(schedule.name) = '' OR length(schedule.name) > 200
     OR schedule.name ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'name must be a non-empty string of at most 200 printable characters' USING ERRCODE = '22023';
  END IF;
  PERFORM docket.cron_parse(schedule.cron);
  PERFORM docket.check_tz(schedule.tz);
  PERFORM docket.check_job(schedule.kind, coalesce(schedule.args, '{}'), coalesce(schedule.queue, 'default'),
                           coalesce(schedule.priority, 0), schedule.max_retries, NULL);
  -- A crawl kind's collection named after its args: the schedule's args must fit it now, not at its first slot.
  PERFORM docket.crawl_collection_for(k.crawl_collection, coalesce(schedule.args, '{}'))
     FROM docket.kinds k WHERE k.kind = schedule.kind;
  IF schedule.on_overlap IS NULL OR schedule.on_overlap NOT IN ('skip', 'allow', 'replace') THEN
    RAISE EXCEPTION 'on_overlap must be skip, allow or replace, got %', coalesce(schedule.on_overlap, 'null')
      USING ERRCODE = '22023';
  END IF;
  IF schedule.on_missed IS NULL OR schedule.on_missed NOT IN ('skip', 'latest', 'all') THEN
    RAISE EXCEPTION 'on_missed must be skip, latest or all, got %', coalesce(schedule.on_missed, 'null')
      USING ERRCODE = '22023';
  END IF;
  IF schedule.spread IS NOT NULL AND (schedule.spread < interval '0' OR schedule.spread > interval '366 days') THEN
    RAISE EXCEPTION 'spread must be between 0 and 366 days, got %', schedule.spread USING ERRCODE = '22023';
  END IF;
  IF schedule.source IS NULL OR schedule.source NOT IN ('runtime', 'config') THEN
    RAISE EXCEPTION 'source must be runtime or config' USING ERRCODE = '22023';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM docket.kinds k WHERE k.kind = schedule.kind)
     AND NOT EXISTS (SELECT 1 FROM docket.workers w WHERE schedule.kind = ANY (w.kinds)) THEN
    RAISE EXCEPTION 'kind % is not run by any worker that ever started (docket.workers, docket.kinds): check the name, or start a worker for it first',
      schedule.kind USING ERRCODE = '22023';
  END IF;
  v_next := docket.cron_next(schedule.cron, schedule.tz, now());
  INSERT INTO docket.schedules AS s (name, cron, tz, kind, args, queue, priority, max_retries, spread, on_overlap,
                                     on_missed, enabled, source, next_slot, next_run_at)
  VALUES (schedule.name, schedule.cron, schedule.tz, schedule.kind, coalesce(schedule.args, '{}'), schedule.queue,
          coalesce(schedule.priority, 0), schedule.max_retries, schedule.spread, schedule.on_overlap,
          schedule.on_missed, coalesce(schedule.enabled, true), schedule.source, v_next,
          v_next + docket.schedule_offset(schedule.name, schedule.spread))
  ON CONFLICT (name) DO UPDATE
     SET cron = EXCLUDED.cron, tz = EXCLUDED.tz, kind = EXCLUDED.kind, args = EXCLUDED.args, queue = EXCLUDED.queue,
         priority = EXCLUDED.priority, max_retries = EXCLUDED.max_retries, spread = EXCLUDED.spread,
         on_overlap = EXCLUDED.on_overlap, on_missed = EXCLUDED.on_missed, enabled = EXCLUDED.enabled,
         source = EXCLUDED.source, updated_at = now(),
         -- Same timing: keep the slot it is waiting for (a deploy re-applying TOML moves nothing).
         next_slot = CASE WHEN s.cron = EXCLUDED.cron AND s.tz = EXCLUDED.tz
                               AND s.spread IS NOT DISTINCT FROM EXCLUDED.spread AND s.next_slot IS NOT NULL
                          THEN s.next_slot ELSE EXCLUDED.next_slot END,
         next_run_at = CASE WHEN s.cron = EXCLUDED.cron AND s.tz = EXCLUDED.tz
                                 AND s.spread IS NOT DISTINCT FROM EXCLUDED.spread AND s.next_run_at IS NOT NULL
                            THEN s.next_run_at ELSE EXCLUDED.next_run_at END
  RETURNING * INTO v_row;
  PERFORM pg_notify('docket_control', 'schedule');
  RETURN v_row;
END $$;

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
  -- A slot's args that no longer fit its crawl kind's collection template (the kind's config
  -- changed after the schedule was made) skip the slot, counted and logged: raising here would
  -- stop the tick, and with it every other schedule. A manual run (p_slot NULL) raises to its caller.
  IF p_slot IS NOT NULL AND EXISTS (SELECT 1 FROM docket.kinds k
                                     WHERE k.kind = p_s.kind AND strpos(k.crawl_collection, '{args.') > 0) THEN
    BEGIN
      PERFORM docket.crawl_collection_for(k.crawl_collection, p_s.args) FROM docket.kinds k WHERE k.kind = p_s.kind;
    EXCEPTION WHEN invalid_parameter_value THEN
      RAISE WARNING 'schedule %: slot % skipped: %', p_s.name, p_slot, SQLERRM;
      RETURN NULL;
    END;
  END IF;
  SELECT * INTO v_job FROM docket.enqueue_job(p_s.kind, p_s.args, p_s.queue, p_s.priority,
                                              now(), p_s.max_retries, NULL);
  IF NOT v_job.created THEN
    RETURN NULL;  -- e.g. the crawl of this collection is still running
  END IF;
  UPDATE docket.jobs j SET schedule = p_s.name, scheduled_for = p_slot WHERE j.id = v_job.id;
  RETURN v_job.id;
END $$;

-- Callable by everyone who enqueues or crawls: it answers "which collection would this job crawl into".
INSERT INTO docket.function_roles (name, role) VALUES
  ('crawl_collection_for', 'docket_enqueuer'), ('crawl_collection_for', 'docket_worker'),
  ('crawl_collection_for', 'docket_ops')
ON CONFLICT DO NOTHING;

SELECT docket.apply_security();
