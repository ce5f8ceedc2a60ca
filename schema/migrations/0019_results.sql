-- 0019_results: uniqueness per kind and results that expire (issue 13, part 2).
-- 1. A kind may derive the unique key of jobs enqueued without one from chosen args
--    (docket.kinds.unique_by, with unique_for and unique_states as defaults): on every surface,
--    since every enqueue goes through docket.enqueue_job (single jobs, schedules) or
--    docket.enqueue_many (bulk, HTTP). An explicit unique_key on the job wins (the kind's settings
--    then do not apply); an explicit unique_for / unique_states wins over the kind's.
-- 2. result_ttl per kind (docket.kinds.result_ttl) and per job (docket.jobs.result_ttl): a
--    completed job's result expires at finished_at + the job's result_ttl, else its kind's.
--    From then on every reader sees `result` null and `result_expired_at` set (docket.job_json
--    applies the rule itself, so the answer does not depend on when a prune ran), and the job no
--    longer dedups (a new enqueue of its key runs again). docket.prune clears expired results in
--    its batch (result NULL, result_expired_at set) to give the space back.
-- enqueue and enqueue_job are dropped and created again with `result_ttl` as the new last
-- parameter (their bodies are 0016's plus the blocks marked 0019); enqueue_many keeps 0014's body
-- under the name enqueue_many_plain and a new enqueue_many sends a batch that uses the new
-- fields or a kind that derives keys through enqueue_job one job at a time.

ALTER TABLE docket.kinds
  ADD COLUMN unique_by text[]
    CONSTRAINT kinds_unique_by_check CHECK (unique_by IS NULL OR cardinality(unique_by) BETWEEN 1 AND 16),
  ADD COLUMN unique_for interval
    CONSTRAINT kinds_unique_for_check CHECK (docket.timeout_ok(unique_for)),
  ADD COLUMN unique_states text[],
  ADD COLUMN result_ttl interval
    CONSTRAINT kinds_result_ttl_check CHECK (docket.timeout_ok(result_ttl));

COMMENT ON COLUMN docket.kinds.unique_by IS 'args paths (args, args.report) a job enqueued without a unique_key derives its key from';

ALTER TABLE docket.jobs
  ADD COLUMN result_ttl interval CONSTRAINT jobs_result_ttl_check CHECK (docket.timeout_ok(result_ttl)),
  ADD COLUMN result_expired_at timestamptz;

-- The prune's two walks of results still held: per kind by age (jobs that follow their kind's
-- TTL), and the jobs with a TTL of their own. Only completed jobs that hold a result are in them.
CREATE INDEX jobs_result_held_idx ON docket.jobs (kind, finished_at)
  WHERE state = 'completed' AND result IS NOT NULL AND result_expired_at IS NULL;
CREATE INDEX jobs_result_ttl_idx ON docket.jobs (finished_at)
  WHERE state = 'completed' AND result IS NOT NULL AND result_expired_at IS NULL AND result_ttl IS NOT NULL;

-- When a completed job's result expired (NULL: it has not, or the job is not completed): the
-- prune's stamp, else finished_at + the job's result_ttl (else its kind's) once that has passed.
CREATE FUNCTION docket.result_expired_at(j docket.jobs) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN j.state = 'completed' THEN
           coalesce(j.result_expired_at,
                    (SELECT j.finished_at + t.ttl
                       FROM (SELECT coalesce(j.result_ttl, (SELECT k.result_ttl FROM docket.kinds k WHERE k.kind = j.kind)) AS ttl) t
                      WHERE j.finished_at + t.ttl <= now()))
         END
$$;

-- The unique key a kind with unique_by gives a job enqueued without one:
-- 'docket:' || kind || ':' || md5 of the canonical JSON (jsonb's text form: keys sorted, no
-- spaces) of the args (unique_by = {args}) or of a JSON array of the chosen values in unique_by
-- order (a missing path is null).
CREATE FUNCTION docket.derived_unique_key(p_kind text, p_args jsonb, p_by text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT 'docket:' || p_kind || ':' ||
         md5(CASE WHEN p_by = ARRAY['args'] THEN coalesce(p_args, '{}')
                  ELSE (SELECT jsonb_agg(coalesce(p_args #> string_to_array(substr(b.path, 6), '.'), 'null') ORDER BY b.ord)
                          FROM unnest(p_by) WITH ORDINALITY AS b(path, ord)) END::text)
$$;

-- A kind's unique settings, checked (22023 naming `unique.by`, `unique.period`, `unique.states`):
-- by is `args` or 1-16 paths into args (args.report, args.params.range), period in (0, 365 days].
CREATE FUNCTION docket.check_kind_unique(p_by text[], p_for interval, p_states text[]) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v_bad text;
BEGIN
  IF p_by IS NULL THEN
    IF p_for IS NOT NULL OR p_states IS NOT NULL THEN
      RAISE EXCEPTION 'unique.period and unique.states need unique.by ("args" or a list of paths into args)'
        USING ERRCODE = '22023';
    END IF;
    RETURN;
  END IF;
  IF cardinality(p_by) = 0 OR cardinality(p_by) > 16 OR array_ndims(p_by) <> 1 THEN
    RAISE EXCEPTION 'unique.by must be "args" or 1 to 16 paths into args, got % entries', cardinality(p_by)
      USING ERRCODE = '22023';
  END IF;
  SELECT b INTO v_bad FROM unnest(p_by) b
   WHERE b IS NULL OR length(b) > 600 OR b !~ '^args(\.[A-Za-z0-9_-]{1,64}){0,8}$' LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'unique.by entries must be args or a path into args such as args.report (1 to 8 names of letters, digits, _ or -), got "%"',
      left(coalesce(v_bad, 'NULL'), 100) USING ERRCODE = '22023';
  END IF;
  PERFORM docket.check_timeout('unique.period', p_for);
  PERFORM docket.check_unique_states('unique.states', p_states);
END $$;

-- Seeds a kind's result settings from a worker's config: with p_unique, the kind's unique
-- settings become exactly the given ones (NULL by: none); a NULL result_ttl leaves the stored one.
CREATE FUNCTION docket.seed_kind_results(kind text, p_unique boolean, unique_by text[], unique_for interval,
                                         unique_states text[], result_ttl interval) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  PERFORM docket.check_name('kind', kind);
  IF p_unique THEN
    PERFORM docket.check_kind_unique(unique_by, unique_for, unique_states);
  END IF;
  PERFORM docket.check_timeout('result_ttl', result_ttl);
  INSERT INTO docket.kinds AS k (kind, unique_by, unique_for, unique_states, result_ttl)
  VALUES (seed_kind_results.kind, CASE WHEN p_unique THEN seed_kind_results.unique_by END,
          CASE WHEN p_unique THEN seed_kind_results.unique_for END,
          CASE WHEN p_unique THEN seed_kind_results.unique_states END, seed_kind_results.result_ttl)
  ON CONFLICT ON CONSTRAINT kinds_pkey
  DO UPDATE SET unique_by = CASE WHEN p_unique THEN excluded.unique_by ELSE k.unique_by END,
                unique_for = CASE WHEN p_unique THEN excluded.unique_for ELSE k.unique_for END,
                unique_states = CASE WHEN p_unique THEN excluded.unique_states ELSE k.unique_states END,
                result_ttl = coalesce(excluded.result_ttl, k.result_ttl),
                updated_at = now();
END $$;

-- A JSON job's unique_states as text[]: NULL when absent or null; else an array of strings.
CREATE FUNCTION docket.json_states_field(field text, value jsonb) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF value IS NULL OR jsonb_typeof(value) = 'null' THEN RETURN NULL; END IF;
  IF jsonb_typeof(value) <> 'array' OR EXISTS (SELECT 1 FROM jsonb_array_elements(value) e WHERE jsonb_typeof(e) <> 'string') THEN
    RAISE EXCEPTION '% must be an array of job state names, like ["available", "scheduled", "running", "retryable", "completed"]',
      field USING ERRCODE = '22023';
  END IF;
  RETURN ARRAY(SELECT jsonb_array_elements_text(value));
END $$;

DROP FUNCTION docket.enqueue(text, jsonb, text, int, timestamptz, int, text, interval, interval, text[]);
DROP FUNCTION docket.enqueue_job(text, jsonb, text, int, timestamptz, int, text, interval, interval, text[]);

-- One job, as in 0016, plus the kind's derived key and `result_ttl` (the blocks marked 0019).
CREATE FUNCTION docket.enqueue_job(kind text, args jsonb DEFAULT '{}', queue text DEFAULT NULL,
                                   priority int DEFAULT 0, run_at timestamptz DEFAULT now(),
                                   max_retries int DEFAULT NULL, unique_key text DEFAULT NULL,
                                   timeout interval DEFAULT NULL, unique_for interval DEFAULT NULL,
                                   unique_states text[] DEFAULT NULL, result_ttl interval DEFAULT NULL,
                                   OUT id bigint, OUT created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_run_at timestamptz := coalesce(enqueue_job.run_at, now());
  v_collection text;
  v_queue text;
  v_key text := enqueue_job.unique_key;
  v_for interval := enqueue_job.unique_for;
  v_states text[] := enqueue_job.unique_states;
  v_kind docket.kinds;
BEGIN
  -- 0014: a crawl kind's collection may name args (docket.crawl_collection_for).
  SELECT * INTO v_kind FROM docket.kinds k WHERE k.kind = enqueue_job.kind;
  v_collection := docket.crawl_collection_for(v_kind.crawl_collection, enqueue_job.args);
  v_queue := coalesce(enqueue_job.queue, v_kind.queue, 'default');
  PERFORM docket.check_job_fields('', kind, args, v_queue, priority, max_retries, unique_key, v_run_at);
  PERFORM docket.check_timeout('timeout', enqueue_job.timeout);
  PERFORM docket.check_timeout('result_ttl', enqueue_job.result_ttl);
  -- 0019: a kind with unique_by derives the key of a job enqueued without one; the job's own
  -- unique_for / unique_states win over the kind's.
  IF v_key IS NULL AND v_collection IS NULL AND v_kind.unique_by IS NOT NULL THEN
    v_key := docket.derived_unique_key(enqueue_job.kind, enqueue_job.args, v_kind.unique_by);
    v_for := coalesce(v_for, v_kind.unique_for);
    v_states := coalesce(v_states, v_kind.unique_states);
  END IF;
  PERFORM docket.check_unique_options('', v_key, v_for, v_states);
  PERFORM docket.check_kind_known('kind', kind);
  IF v_collection IS NOT NULL THEN
    v_key := coalesce(v_key, 'crawl:' || v_collection);
  END IF;
  -- 0013: a period or finished states count. Enqueues of one key take turns (a transaction-level
  -- advisory lock on the key's hash; another key that shares the hash only waits its turn), so
  -- the lookup below runs after any earlier enqueue of the key committed and sees its job, even
  -- one that already finished. Without the lock two enqueues could both find nothing; the unique
  -- index would stop the second only while the first's job is unfinished.
  IF v_for IS NOT NULL OR v_states IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(1685024107, hashtext(v_key));
    SELECT j.id INTO id FROM docket.jobs j
     WHERE j.unique_key = v_key
       AND j.state::text = ANY (coalesce(v_states, ARRAY['available', 'scheduled', 'running', 'retryable']))
       AND (v_for IS NULL OR j.inserted_at > now() - v_for)
       -- 0019: a completed job whose result expired no longer dedups: the request runs again.
       AND (j.state <> 'completed' OR docket.result_expired_at(j) IS NULL)
     ORDER BY j.id DESC LIMIT 1;
    IF id IS NOT NULL THEN
      created := false;
      RETURN;
    END IF;
  END IF;
  FOR i IN 1..10 LOOP
    INSERT INTO docket.jobs AS j (kind, args, queue, priority, run_at, max_retries, unique_key, timeout, result_ttl,
                                  state)
    VALUES (enqueue_job.kind, enqueue_job.args, v_queue, enqueue_job.priority, v_run_at,
            enqueue_job.max_retries, v_key, enqueue_job.timeout, enqueue_job.result_ttl,
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

-- The public enqueue, as in 0016, with `result_ttl`.
CREATE FUNCTION docket.enqueue(kind text, args jsonb DEFAULT '{}', queue text DEFAULT NULL,
                               priority int DEFAULT 0, run_at timestamptz DEFAULT now(),
                               max_retries int DEFAULT NULL, unique_key text DEFAULT NULL,
                               timeout interval DEFAULT NULL, unique_for interval DEFAULT NULL,
                               unique_states text[] DEFAULT NULL, result_ttl interval DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
  SELECT (docket.enqueue_job(kind, args, queue, priority, run_at, max_retries, unique_key, timeout,
                             unique_for, unique_states, result_ttl)).id
$$;

-- 0014's bulk enqueue, kept whole for the batches it serves (no unique_for, unique_states or
-- result_ttl, no kind that derives keys): called only by docket.enqueue_many.
ALTER FUNCTION docket.enqueue_many(jsonb) RENAME TO enqueue_many_plain;
INSERT INTO docket.internal_functions (name) VALUES ('enqueue_many_plain') ON CONFLICT DO NOTHING;

-- Bulk enqueue, results in input order. A batch that uses unique_for, unique_states or
-- result_ttl, or holds a keyless job of a kind with unique_by, goes through docket.enqueue_job
-- one job at a time (in unique key order, as enqueue_many_plain takes its keys; errors name
-- jobs[i].field); any other batch takes enqueue_many_plain's one-statement path.
CREATE FUNCTION docket.enqueue_many(jobs jsonb) RETURNS TABLE (id bigint, created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_n int;
  v_ids bigint[];
  v_created boolean[];
  v_where text;
  v_field text;
  v_job record;
  r record;
  v_kind text;
  v_args jsonb;
  v_queue text;
  v_priority int;
  v_retries int;
  v_key text;
  v_run_at timestamptz;
  v_timeout interval;
  v_for interval;
  v_states text[];
  v_ttl interval;
BEGIN
  IF jobs IS NULL OR jsonb_typeof(jobs) <> 'array' THEN
    RAISE EXCEPTION 'jobs must be a JSON array of job objects' USING ERRCODE = '22023';
  END IF;
  IF NOT EXISTS (
       SELECT 1 FROM jsonb_array_elements(jobs) e(item)
        WHERE jsonb_typeof(e.item) = 'object'
          AND (e.item ?| ARRAY['unique_for', 'unique_states', 'result_ttl']
               OR (coalesce(jsonb_typeof(e.item -> 'unique_key'), 'null') = 'null'
                   AND EXISTS (SELECT 1 FROM docket.kinds k WHERE k.kind = e.item ->> 'kind' AND k.unique_by IS NOT NULL)))) THEN
    RETURN QUERY SELECT * FROM docket.enqueue_many_plain(jobs);
    RETURN;
  END IF;
  v_n := jsonb_array_length(jobs);
  v_ids := array_fill(NULL::bigint, ARRAY[v_n]);
  v_created := array_fill(false, ARRAY[v_n]);
  FOR r IN
    SELECT e.item, e.ord FROM jsonb_array_elements(jobs) WITH ORDINALITY AS e(item, ord)
      LEFT JOIN docket.kinds k ON jsonb_typeof(e.item) = 'object' AND k.kind = e.item ->> 'kind'
     ORDER BY CASE WHEN jsonb_typeof(e.item) = 'object' THEN
                coalesce(CASE WHEN jsonb_typeof(e.item -> 'unique_key') = 'string' THEN e.item ->> 'unique_key' END,
                         CASE WHEN k.unique_by IS NOT NULL AND jsonb_typeof(e.item -> 'args') = 'object'
                              THEN docket.derived_unique_key(k.kind, e.item -> 'args', k.unique_by) END) END,
              e.ord
  LOOP
    v_where := format('jobs[%s].', r.ord - 1);
    IF jsonb_typeof(r.item) <> 'object' THEN
      RAISE EXCEPTION 'jobs[%] must be a JSON object, got %', r.ord - 1, jsonb_typeof(r.item) USING ERRCODE = '22023';
    END IF;
    SELECT f INTO v_field FROM jsonb_object_keys(r.item) f
     WHERE f NOT IN ('kind', 'args', 'queue', 'priority', 'run_at', 'max_retries', 'unique_key', 'timeout',
                     'unique_for', 'unique_states', 'result_ttl') LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'jobs[%]: unknown field "%"; fields are kind, args, queue, priority, run_at, max_retries, unique_key, timeout, unique_for, unique_states, result_ttl',
        r.ord - 1, left(v_field, 60) USING ERRCODE = '22023';
    END IF;
    IF NOT r.item ? 'kind' THEN
      RAISE EXCEPTION '%kind is required', v_where USING ERRCODE = '22023';
    END IF;
    v_kind := docket.json_text_field(v_where || 'kind', r.item -> 'kind');
    v_args := CASE WHEN jsonb_typeof(r.item -> 'args') IS DISTINCT FROM 'null' THEN r.item -> 'args' END;
    v_queue := docket.json_text_field(v_where || 'queue', r.item -> 'queue');
    v_priority := coalesce(docket.json_int_field(v_where || 'priority', r.item -> 'priority'), 0);
    v_retries := docket.json_int_field(v_where || 'max_retries', r.item -> 'max_retries');
    v_key := docket.json_text_field(v_where || 'unique_key', r.item -> 'unique_key');
    v_run_at := docket.json_time_field(v_where || 'run_at', r.item -> 'run_at');
    v_timeout := docket.json_timeout_field(v_where || 'timeout', r.item -> 'timeout');
    v_for := docket.json_timeout_field(v_where || 'unique_for', r.item -> 'unique_for');
    v_states := docket.json_states_field(v_where || 'unique_states', r.item -> 'unique_states');
    v_ttl := docket.json_timeout_field(v_where || 'result_ttl', r.item -> 'result_ttl');
    BEGIN
      v_job := docket.enqueue_job(v_kind, coalesce(v_args, '{}'), v_queue, v_priority, v_run_at, v_retries, v_key,
                                  v_timeout, v_for, v_states, v_ttl);
    EXCEPTION WHEN invalid_parameter_value THEN
      -- enqueue_job names the field alone: say which job.
      RAISE EXCEPTION '%', v_where || SQLERRM USING ERRCODE = '22023';
    END;
    v_ids[r.ord] := v_job.id;
    v_created[r.ord] := v_job.created;
  END LOOP;
  RETURN QUERY SELECT o.id, o.created FROM unnest(v_ids, v_created) WITH ORDINALITY AS o(id, created, ord) ORDER BY o.ord;
END $$;

-- A job as JSON for APIs, as in 0002, and once its result expired: `result` null and
-- `result_expired_at` the time it expired.
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
         || coalesce((SELECT jsonb_build_object('result', NULL, 'result_expired_at', e.at)
                        FROM (SELECT docket.result_expired_at(j) AS at) e WHERE e.at IS NOT NULL), '{}'::jsonb)
$$;

-- Prune as in 0007, then clear expired results (at most p_batch rows more per call): per kind,
-- the jobs that follow their kind's result_ttl, by age; then the jobs with their own. Both walk
-- only the completed jobs that still hold a result (jobs_result_held_idx, jobs_result_ttl_idx).
CREATE FUNCTION docket.prune_results(p_batch int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  v_n int;
  v_total int := 0;
  r record;
BEGIN
  FOR r IN SELECT k.kind, k.result_ttl FROM docket.kinds k WHERE k.result_ttl IS NOT NULL ORDER BY k.kind LOOP
    EXIT WHEN v_total >= p_batch;
    UPDATE docket.jobs j SET result = NULL, result_expired_at = j.finished_at + r.result_ttl
     WHERE j.id = ANY (ARRAY(
       SELECT x.id FROM docket.jobs x
        WHERE x.kind = r.kind AND x.state = 'completed' AND x.result IS NOT NULL AND x.result_expired_at IS NULL
          AND x.finished_at <= now() - r.result_ttl AND x.result_ttl IS NULL
        LIMIT p_batch - v_total FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_total := v_total + v_n;
  END LOOP;
  IF v_total < p_batch THEN
    UPDATE docket.jobs j SET result = NULL, result_expired_at = j.finished_at + j.result_ttl
     WHERE j.id = ANY (ARRAY(
       SELECT x.id FROM docket.jobs x
        WHERE x.state = 'completed' AND x.result IS NOT NULL AND x.result_expired_at IS NULL
          AND x.result_ttl IS NOT NULL AND x.finished_at + x.result_ttl <= now()
        LIMIT p_batch - v_total FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_total := v_total + v_n;
  END IF;
  RETURN v_total;
END $$;

DO $$
DECLARE
  v_def text := pg_get_functiondef('docket.prune(int)'::regprocedure);
BEGIN
  -- 0007's body, with the results' clean-up before its answer (one rule for every worker).
  v_def := replace(v_def, '  RETURN v_total;', '  v_total := v_total + docket.prune_results(p_batch);
  RETURN v_total;');
  IF v_def NOT LIKE '%prune_results%' THEN
    RAISE EXCEPTION 'docket.prune has no RETURN v_total to extend';
  END IF;
  EXECUTE v_def;
END $$;

-- A worker's config seeds the result settings, as it seeds retention; anyone who reads jobs may
-- ask when a result expired or which key a kind would derive.
INSERT INTO docket.function_roles VALUES
  ('seed_kind_results', 'docket_worker'), ('seed_kind_results', 'docket_ops'),
  ('result_expired_at', 'docket_enqueuer'), ('result_expired_at', 'docket_worker'), ('result_expired_at', 'docket_ops'),
  ('derived_unique_key', 'docket_enqueuer'), ('derived_unique_key', 'docket_worker'), ('derived_unique_key', 'docket_ops')
ON CONFLICT DO NOTHING;
INSERT INTO docket.internal_functions VALUES ('prune_results') ON CONFLICT DO NOTHING;

SELECT docket.apply_security();
