-- 0016_unique_and_wait: results that can be found and awaited, uniqueness over a period (issue 13).
-- 1. A job reaching completed, failed or cancelled sends NOTIFY docket_finished '<id>', so a
--    waiter (GET /jobs/{id}?wait=, `docket wait`, Client::wait) is answered the moment it commits.
-- 2. docket.job_by_key(K): the newest job made with unique_key K, in any state.
-- 3. docket.enqueue and docket.enqueue_job take `unique_for interval` and `unique_states text[]`
--    next to unique_key: a job with that key in one of those states, made within the period,
--    is returned instead of a new one (created = false). Both NULL: as before (one unfinished job
--    per key, the partial unique index). enqueue and enqueue_job are dropped and created again
--    with the two new last parameters (CREATE OR REPLACE would leave the 8-parameter ones behind
--    as ambiguous overloads); their bodies are 0009's plus the block marked "0013".

-- One NOTIFY per finished job, sent at commit (a rolled-back finish sends nothing). Only rows
-- that change into a finished state fire it (the WHEN clause is checked without calling the
-- function), so claims, heartbeats and progress cost nothing more. Waiters treat it as a wake-up:
-- they read the job before trusting it, and re-read what they wait for after a reconnect.
CREATE FUNCTION docket.jobs_notify_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('docket_finished', NEW.id::text);
  RETURN NULL;
END $$;

CREATE TRIGGER jobs_notify_finished AFTER UPDATE OF state ON docket.jobs
  FOR EACH ROW
  WHEN (NEW.state IN ('completed', 'failed', 'cancelled') AND OLD.state IS DISTINCT FROM NEW.state)
  EXECUTE FUNCTION docket.jobs_notify_finished();

-- A trigger's function is never called directly: closed to PUBLIC like the other internal steps.
INSERT INTO docket.internal_functions (name) VALUES ('jobs_notify_finished') ON CONFLICT DO NOTHING;

-- The newest job made with `key` as its unique_key, whatever its state (none: no row). Walks
-- jobs_key_idx (0011) backwards, so it reads one index entry however many jobs had the key.
CREATE FUNCTION docket.job_by_key(key text) RETURNS SETOF docket.jobs
LANGUAGE sql STABLE AS $$
  SELECT j.* FROM docket.jobs j WHERE j.unique_key = job_by_key.key ORDER BY j.id DESC LIMIT 1
$$;

INSERT INTO docket.function_roles VALUES ('job_by_key', 'docket_enqueuer'), ('job_by_key', 'docket_worker'),
                                         ('job_by_key', 'docket_ops')
  ON CONFLICT DO NOTHING;

-- The states a unique_states may name, checked: NULL stays NULL (the unfinished states); else an
-- array of 1-7 distinct job states that includes every unfinished one (the partial unique index
-- keeps one unfinished job per key whatever the caller asks, as River requires too). Raises
-- 22023 naming `p_field`.
CREATE FUNCTION docket.check_unique_states(p_field text, p_states text[]) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v_bad text;
BEGIN
  IF p_states IS NULL THEN RETURN; END IF;
  IF cardinality(p_states) = 0 OR cardinality(p_states) > 7 OR array_ndims(p_states) <> 1 THEN
    RAISE EXCEPTION '% must list 1 to 7 job states, got % entries', p_field, cardinality(p_states)
      USING ERRCODE = '22023';
  END IF;
  SELECT s INTO v_bad FROM unnest(p_states) s
   WHERE s IS NULL OR s NOT IN ('available', 'scheduled', 'running', 'retryable', 'completed', 'failed', 'cancelled')
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION '% has an unknown state "%"; states are available, scheduled, running, retryable, completed, failed, cancelled',
      p_field, left(coalesce(v_bad, 'NULL'), 60) USING ERRCODE = '22023';
  END IF;
  SELECT s INTO v_bad FROM unnest(ARRAY['available', 'scheduled', 'running', 'retryable']) s
   WHERE NOT s = ANY (p_states) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION '% must include every unfinished state (available, scheduled, running, retryable): % is missing',
      p_field, v_bad USING ERRCODE = '22023';
  END IF;
END $$;

-- unique_for: NULL (no period), or more than 0 and at most 365 days; it and unique_states need a
-- unique_key. Raises 22023 naming the field, prefixed by `p_where` ("" or "jobs[3].").
CREATE FUNCTION docket.check_unique_options(p_where text, p_key text, p_for interval, p_states text[]) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF (p_for IS NOT NULL OR p_states IS NOT NULL) AND p_key IS NULL THEN
    RAISE EXCEPTION '%unique_for and %unique_states need a unique_key', p_where, p_where USING ERRCODE = '22023';
  END IF;
  PERFORM docket.check_timeout(p_where || 'unique_for', p_for);
  PERFORM docket.check_unique_states(p_where || 'unique_states', p_states);
END $$;

DROP FUNCTION docket.enqueue(text, jsonb, text, int, timestamptz, int, text, interval);
DROP FUNCTION docket.enqueue_job(text, jsonb, text, int, timestamptz, int, text, interval);

-- One job, as in 0009, plus `unique_for` and `unique_states` (the block marked 0013).
CREATE FUNCTION docket.enqueue_job(kind text, args jsonb DEFAULT '{}', queue text DEFAULT NULL,
                                   priority int DEFAULT 0, run_at timestamptz DEFAULT now(),
                                   max_retries int DEFAULT NULL, unique_key text DEFAULT NULL,
                                   timeout interval DEFAULT NULL, unique_for interval DEFAULT NULL,
                                   unique_states text[] DEFAULT NULL, OUT id bigint, OUT created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_run_at timestamptz := coalesce(enqueue_job.run_at, now());
  v_collection text;
  v_queue text;
  v_key text := enqueue_job.unique_key;
BEGIN
  -- 0014: a crawl kind's collection may name args (docket.crawl_collection_for).
  SELECT docket.crawl_collection_for(k.crawl_collection, enqueue_job.args), k.queue INTO v_collection, v_queue
    FROM docket.kinds k WHERE k.kind = enqueue_job.kind;
  v_queue := coalesce(enqueue_job.queue, v_queue, 'default');
  PERFORM docket.check_job_fields('', kind, args, v_queue, priority, max_retries, unique_key, v_run_at);
  PERFORM docket.check_timeout('timeout', enqueue_job.timeout);
  PERFORM docket.check_unique_options('', enqueue_job.unique_key, enqueue_job.unique_for, enqueue_job.unique_states);
  PERFORM docket.check_kind_known('kind', kind);
  IF v_collection IS NOT NULL THEN
    v_key := coalesce(v_key, 'crawl:' || v_collection);
  END IF;
  -- 0013: a period or finished states count. Enqueues of one key take turns (a transaction-level
  -- advisory lock on the key's hash; another key that shares the hash only waits its turn), so
  -- the lookup below runs after any earlier enqueue of the key committed and sees its job, even
  -- one that already finished. Without the lock two enqueues could both find nothing; the unique
  -- index would stop the second only while the first's job is unfinished.
  IF enqueue_job.unique_for IS NOT NULL OR enqueue_job.unique_states IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(1685024107, hashtext(v_key));
    SELECT j.id INTO id FROM docket.jobs j
     WHERE j.unique_key = v_key
       AND j.state::text = ANY (coalesce(enqueue_job.unique_states, ARRAY['available', 'scheduled', 'running', 'retryable']))
       AND (enqueue_job.unique_for IS NULL OR j.inserted_at > now() - enqueue_job.unique_for)
     ORDER BY j.id DESC LIMIT 1;
    IF id IS NOT NULL THEN
      created := false;
      RETURN;
    END IF;
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

-- The public enqueue, as in 0009, with `unique_for` and `unique_states`.
CREATE FUNCTION docket.enqueue(kind text, args jsonb DEFAULT '{}', queue text DEFAULT NULL,
                               priority int DEFAULT 0, run_at timestamptz DEFAULT now(),
                               max_retries int DEFAULT NULL, unique_key text DEFAULT NULL,
                               timeout interval DEFAULT NULL, unique_for interval DEFAULT NULL,
                               unique_states text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
  SELECT (docket.enqueue_job(kind, args, queue, priority, run_at, max_retries, unique_key, timeout,
                             unique_for, unique_states)).id
$$;

SELECT docket.apply_security();
