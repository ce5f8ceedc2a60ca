-- 0020_callbacks: a url job may wait for a callback (issue 13). A url kind with `callback = true`
-- sends its endpoint a per-attempt token; an endpoint answering 202 Accepted leaves the job
-- `running` without a worker process behind it, until the token's holder reports its outcome
-- through the API (POST /jobs/{id}/outcome) or the callback deadline passes.
--
-- A run's identity is (attempt, started_at): claim sets started_at, so a snoozed or released job
-- that runs again at the same attempt is still another run. A token is valid while its job is
-- `running` the run it was made for: callback_run = started_at.

-- callback_hash: SHA-256 of the run's token (the token itself is never stored); it stays after
-- the run so a late caller can be told the job finished (410) rather than "wrong token".
-- callback_run: the started_at of the run that was sent the token.
-- callback_deadline: set when the endpoint answered 202: no outcome by then = a timed-out attempt.
-- callback_backoff_s: the kind's backoff wait for this attempt, computed by the worker (the
-- database does not know the kinds' backoff settings): used when the deadline passes or a
-- callback asks for a retry without "in".
ALTER TABLE docket.jobs ADD COLUMN IF NOT EXISTS callback_hash bytea,
                        ADD COLUMN IF NOT EXISTS callback_run timestamptz,
                        ADD COLUMN IF NOT EXISTS callback_deadline timestamptz,
                        ADD COLUMN IF NOT EXISTS callback_backoff_s float8;

-- The maintainer's sweep of waiting jobs past their deadline (or with a cancel request): few rows.
CREATE INDEX IF NOT EXISTS jobs_callback_wait_idx ON docket.jobs (callback_deadline)
  WHERE state = 'running' AND callback_deadline IS NOT NULL;

-- A job as JSON, as in 0002, without the token's hash (a secret's digest is nobody's business).
CREATE OR REPLACE FUNCTION docket.job_json(j docket.jobs) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT (to_jsonb(j) - 'callback_hash' - 'callback_run' - 'callback_backoff_s')
         || jsonb_build_object('max_retries', docket.max_retries_of(j.max_retries, j.kind))
         || CASE WHEN docket.json_too_deep(j.args) OR docket.json_too_deep(j.result) OR docket.json_too_deep(j.progress)
                   OR docket.json_too_deep(j.errors)
                 THEN jsonb_build_object(
                        'args', CASE WHEN docket.json_too_deep(j.args) THEN '{"docket_error": "nested deeper than 64 levels; read it with SQL"}'::jsonb ELSE j.args END,
                        'result', CASE WHEN docket.json_too_deep(j.result) THEN '{"docket_error": "nested deeper than 64 levels; read it with SQL"}'::jsonb ELSE j.result END,
                        'progress', CASE WHEN docket.json_too_deep(j.progress) THEN '{"docket_error": "nested deeper than 64 levels; read it with SQL"}'::jsonb ELSE j.progress END,
                        'errors', CASE WHEN docket.json_too_deep(j.errors) THEN '[]'::jsonb ELSE j.errors END)
                 ELSE '{}'::jsonb END
         -- 0019: an expired result reads as null, with when it expired.
         || coalesce((SELECT jsonb_build_object('result', NULL, 'result_expired_at', e.at)
                        FROM (SELECT docket.result_expired_at(j) AS at) e WHERE e.at IS NOT NULL), '{}'::jsonb)
$$;

-- The worker, before it sends the request: the run's token hash (hex), fenced like every
-- finishing write. False: the worker no longer holds the job.
CREATE FUNCTION docket.callback_arm(p_worker uuid, p_id bigint, p_attempt int, p_hash text) RETURNS boolean
LANGUAGE sql AS $$
  WITH armed AS (
    UPDATE docket.jobs j
       SET callback_hash = decode(p_hash, 'hex'), callback_run = j.started_at, callback_deadline = NULL,
           callback_backoff_s = NULL
     WHERE j.id = p_id AND j.state = 'running' AND j.worker = p_worker AND j.attempt = p_attempt
    RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM armed)
$$;

-- The worker, after the endpoint's 202: the job waits for its callback until now + p_deadline_s;
-- the worker process lets go of it. Fenced by the worker, the attempt and the run's token: a
-- callback that already finished the job (it may come before the 202) leaves nothing to do.
CREATE FUNCTION docket.callback_wait(p_worker uuid, p_id bigint, p_attempt int, p_hash text, p_deadline_s float8,
                                     p_backoff_s float8) RETURNS boolean
LANGUAGE sql AS $$
  WITH waiting AS (
    UPDATE docket.jobs j
       SET callback_deadline = now() + make_interval(secs => least(greatest(p_deadline_s, 0), 365 * 86400)),
           callback_backoff_s = least(greatest(coalesce(p_backoff_s, 0), 0), 86400)
     WHERE j.id = p_id AND j.state = 'running' AND j.worker = p_worker AND j.attempt = p_attempt
       AND j.callback_hash = decode(p_hash, 'hex') AND j.callback_run = j.started_at
    RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM waiting)
$$;

-- Whether the holder of a token (its SHA-256, hex) may write job p_id now, the row locked:
-- 'ok' (running the run the token was made for), 'unknown' (no such job), 'forbidden' (not
-- this job's latest token), 'finished' (completed, failed or cancelled), 'stale' (the token's run
-- is over: the job waits for another attempt or runs one without a callback).
CREATE FUNCTION docket.callback_check(p_id bigint, p_hash text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  j docket.jobs;
BEGIN
  SELECT * INTO j FROM docket.jobs k WHERE k.id = p_id FOR UPDATE;
  IF NOT FOUND THEN RETURN 'unknown'; END IF;
  IF j.callback_hash IS NULL OR j.callback_hash <> decode(p_hash, 'hex') THEN RETURN 'forbidden'; END IF;
  IF j.state IN ('completed', 'failed', 'cancelled') THEN RETURN 'finished'; END IF;
  IF j.state <> 'running' OR j.callback_run IS DISTINCT FROM j.started_at THEN RETURN 'stale'; END IF;
  RETURN 'ok';
END $$;

-- A callback's progress: stored when docket.callback_check says 'ok'; returns its answer.
CREATE FUNCTION docket.callback_progress(p_id bigint, p_hash text, p_progress jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v text := docket.callback_check(p_id, p_hash);
BEGIN
  IF v = 'ok' THEN
    UPDATE docket.jobs SET progress = p_progress WHERE id = p_id;
  END IF;
  RETURN v;
END $$;

-- A callback's outcome (complete|retry|fail|snooze, as docket.finish_and_claim takes them),
-- written by the one fenced finishing write under the run's worker and attempt, with the
-- progress when given, all or nothing. A retry without a delay waits the kind's backoff the
-- worker stored. Returns docket.callback_check's answer, or the state reached.
CREATE FUNCTION docket.callback_finish(p_id bigint, p_hash text, p_outcome text, p_delay_s float8, p_result jsonb,
                                       p_error text, p_progress jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  v text := docket.callback_check(p_id, p_hash);
  j docket.jobs;
  v_state text;
BEGIN
  IF v <> 'ok' THEN RETURN v; END IF;
  IF p_outcome NOT IN ('complete', 'retry', 'fail', 'snooze') THEN
    RAISE EXCEPTION 'outcome must be complete, retry, fail or snooze, got %', left(p_outcome, 40) USING ERRCODE = '22023';
  END IF;
  SELECT * INTO j FROM docket.jobs k WHERE k.id = p_id;
  IF p_progress IS NOT NULL THEN
    UPDATE docket.jobs SET progress = p_progress WHERE id = p_id;
  END IF;
  SELECT f.state INTO v_state
    FROM docket.finish_and_claim(j.worker, ARRAY[p_id], ARRAY[j.attempt], ARRAY[p_outcome],
                                 ARRAY[coalesce(p_delay_s, j.callback_backoff_s, 0)], ARRAY[p_result], ARRAY[p_error],
                                 ARRAY[docket.max_retries_of(j.max_retries, j.kind)], NULL, NULL, 0) f;
  UPDATE docket.jobs SET callback_deadline = NULL WHERE id = p_id;
  RETURN v_state;
END $$;

-- The maintainer: a waiting job past its deadline is a timed-out attempt (retried after the
-- kind's backoff, failed past max_retries, cancelled when a cancel was requested); a waiting job
-- with a cancel request is cancelled now (no worker process would see the request). Written by
-- the one fenced finishing write; a late callback then finds its run over (409) or the job
-- finished (410). Safe to run concurrently (SKIP LOCKED). Returns how many it ended.
CREATE FUNCTION docket.callback_expire(p_batch int DEFAULT 1000) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_n int := 0;
BEGIN
  FOR r IN
    SELECT j.id, j.worker, j.attempt, j.kind, j.max_retries, j.callback_backoff_s, j.callback_deadline,
           j.cancel_requested_at IS NOT NULL AS cancelling
      FROM docket.jobs j
     WHERE j.state = 'running' AND j.callback_deadline IS NOT NULL
       AND j.callback_run IS NOT DISTINCT FROM j.started_at
       AND (j.callback_deadline <= now() OR j.cancel_requested_at IS NOT NULL)
     ORDER BY j.callback_deadline
     LIMIT p_batch
     FOR UPDATE SKIP LOCKED
  LOOP
    PERFORM docket.finish_and_claim(
      r.worker, ARRAY[r.id], ARRAY[r.attempt], ARRAY[CASE WHEN r.cancelling THEN 'cancel' ELSE 'retry' END],
      ARRAY[coalesce(r.callback_backoff_s, 0)], ARRAY[NULL::jsonb],
      ARRAY[CASE WHEN r.cancelling THEN 'cancelled on request while waiting for its callback'
                 ELSE format('no callback before the deadline (%s)', r.callback_deadline) END],
      ARRAY[docket.max_retries_of(r.max_retries, r.kind)], NULL, NULL, 0);
    UPDATE docket.jobs SET callback_deadline = NULL WHERE id = r.id;
    v_n := v_n + 1;
  END LOOP;
  IF v_n > 0 THEN
    PERFORM pg_notify('docket_jobs', '*');
  END IF;
  RETURN v_n;
END $$;

-- Rescue as in 0001, except jobs waiting for their callback: no worker process holds them, so
-- their worker's death is not theirs (docket.callback_expire ends them at their deadline).
CREATE OR REPLACE FUNCTION docket.rescue(p_batch int DEFAULT 1000) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  v_n int;
BEGIN
  UPDATE docket.workers w SET dead_at = now()
   WHERE w.dead_at IS NULL AND w.heartbeat_at < now() - w.lease;
  WITH lost AS (
    SELECT j.id, w.name, w.heartbeat_at, w.lease, docket.max_retries_of(j.max_retries, j.kind) AS max_retries
      FROM docket.jobs j LEFT JOIN docket.workers w ON w.id = j.worker
     WHERE j.state = 'running' AND (w.id IS NULL OR w.dead_at IS NOT NULL)
       AND NOT (j.callback_deadline IS NOT NULL AND j.callback_run IS NOT DISTINCT FROM j.started_at)
     LIMIT p_batch
     FOR UPDATE OF j SKIP LOCKED)
  UPDATE docket.jobs j
     SET state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                      WHEN j.attempt > lost.max_retries THEN 'failed'
                      ELSE 'available' END::docket.job_state,
         finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL OR j.attempt > lost.max_retries THEN now() END,
         run_at = now(),
         errors = j.errors || jsonb_build_array(jsonb_build_object(
           'attempt', j.attempt, 'at', now(),
           'error', CASE WHEN lost.name IS NULL
                         THEN format('job was running on unknown worker %s; rescued', coalesce(j.worker::text, '(none)'))
                         ELSE format('worker %s lost its lease (no heartbeat since %s, lease %s); job rescued',
                                     lost.name, lost.heartbeat_at, lost.lease) END))
    FROM lost WHERE j.id = lost.id AND j.id = ANY (ARRAY(SELECT l.id FROM lost l));  -- by primary key, see prune
  GET DIAGNOSTICS v_n = ROW_COUNT;
  IF v_n > 0 THEN
    PERFORM pg_notify('docket_jobs', '*');
  END IF;
  RETURN v_n;
END $$;

-- Stuck jobs as in 0009, except jobs waiting for their callback: no worker process holds them
-- (their worker may have stopped or died), so they are stuck only when the maintainer has not
-- ended them within a minute past their callback deadline.
CREATE OR REPLACE VIEW docket.stuck_jobs AS
  SELECT j.id, j.kind, j.queue, j.attempt, j.started_at, j.worker, w.name AS worker_name,
         w.heartbeat_at, now() - w.heartbeat_at AS heartbeat_age,
         CASE WHEN j.callback_deadline IS NOT NULL AND j.callback_run IS NOT DISTINCT FROM j.started_at
                THEN 'waiting for its callback past its deadline (' || j.callback_deadline::text || ')'
              WHEN w.id IS NULL THEN 'its worker is unknown'
              WHEN w.dead_at IS NOT NULL OR w.heartbeat_at < now() - w.lease THEN 'its worker is dead (lease expired)'
              ELSE 'running past its timeout (' || coalesce(j.timeout, k.timeout, interval '30 minutes')::text || ')'
         END AS reason
    FROM docket.jobs j
    LEFT JOIN docket.workers w ON w.id = j.worker
    LEFT JOIN docket.kinds k ON k.kind = j.kind
   WHERE j.state = 'running'
     AND CASE WHEN j.callback_deadline IS NOT NULL AND j.callback_run IS NOT DISTINCT FROM j.started_at
                THEN j.callback_deadline < now() - interval '1 minute'
              ELSE w.id IS NULL OR w.dead_at IS NOT NULL OR w.heartbeat_at < now() - w.lease
                   OR j.started_at < now() - coalesce(j.timeout, k.timeout, interval '30 minutes') - interval '1 minute'
         END;

-- Workers arm, wait and sweep; the API (any of its roles) serves the token holders' calls,
-- authenticated by the token itself.
INSERT INTO docket.function_roles VALUES
  ('callback_arm', 'docket_worker'), ('callback_wait', 'docket_worker'), ('callback_expire', 'docket_worker'),
  ('callback_progress', 'docket_worker'), ('callback_progress', 'docket_ops'), ('callback_progress', 'docket_enqueuer'),
  ('callback_finish', 'docket_worker'), ('callback_finish', 'docket_ops'), ('callback_finish', 'docket_enqueuer')
ON CONFLICT DO NOTHING;
INSERT INTO docket.internal_functions VALUES ('callback_check') ON CONFLICT DO NOTHING;


-- CREATE OR REPLACE drops a function's settings: pin rescue's plans again (see 0001).
ALTER FUNCTION docket.rescue(int) SET enable_seqscan = off;
ALTER FUNCTION docket.rescue(int) SET enable_bitmapscan = off;

SELECT docket.apply_security();
