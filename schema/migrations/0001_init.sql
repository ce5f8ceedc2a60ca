-- 0001_init: jobs, kinds (quotas), queues (pause), workers (liveness), crawls, and the SQL API.
-- Applied by `docket migrate` inside one transaction, under an advisory lock.
-- Never edit this file once landed: add a new migration instead.

CREATE TYPE docket.job_state AS ENUM (
  'available',  -- ready to run now
  'scheduled',  -- waits for run_at
  'running',    -- claimed by a live worker
  'retryable',  -- failed an attempt, waits for its backoff
  'completed',
  'failed',     -- out of retries, or a permanent error
  'cancelled'
);

-- Per-kind settings shared by the fleet: the global quota and the default retry budget.
CREATE TABLE docket.kinds (
  kind        text PRIMARY KEY,
  max_running int CHECK (max_running IS NULL OR max_running >= 0),
  max_retries int CHECK (max_retries IS NULL OR max_retries >= 0),  -- for jobs that set none
  crawl_collection text,  -- crawl kinds: enqueueing one dedups on its collection (see crawls below)
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Queue flags; a queue without a row is simply active.
CREATE TABLE docket.queues (
  name       text PRIMARY KEY,
  paused_at  timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per worker process start. heartbeat_at is stamped with the database clock;
-- a worker whose heartbeat is older than its lease is dead and its running jobs are rescued.
CREATE TABLE docket.workers (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name         text NOT NULL,
  host         text NOT NULL DEFAULT '',
  pid          int NOT NULL DEFAULT 0,
  queues       text[] NOT NULL DEFAULT '{}',
  kinds        text[] NOT NULL DEFAULT '{}',
  concurrency  int NOT NULL DEFAULT 0,
  lease        interval NOT NULL DEFAULT '30 seconds',
  started_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  stopping_at  timestamptz,
  dead_at      timestamptz
) WITH (fillfactor = 50);  -- heartbeats are HOT updates: leave room on the page

CREATE TABLE docket.jobs (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  state               docket.job_state NOT NULL DEFAULT 'available',
  priority            smallint NOT NULL DEFAULT 0,
  attempt             int NOT NULL DEFAULT 0,
  max_retries         int,  -- NULL: the kind's max_retries (docket.kinds), else 20
  run_at              timestamptz NOT NULL DEFAULT now(),
  inserted_at         timestamptz NOT NULL DEFAULT now(),
  started_at          timestamptz,
  finished_at         timestamptz,
  cancel_requested_at timestamptz,
  worker              uuid,
  kind                text NOT NULL,
  queue               text NOT NULL DEFAULT 'default',
  unique_key          text,
  args                jsonb NOT NULL DEFAULT '{}',
  errors              jsonb NOT NULL DEFAULT '[]',
  result              jsonb,
  progress            jsonb,
  CONSTRAINT jobs_kind_check CHECK (kind <> '' AND length(kind) <= 200),
  CONSTRAINT jobs_queue_check CHECK (queue <> '' AND length(queue) <= 200),
  CONSTRAINT jobs_priority_check CHECK (priority BETWEEN 0 AND 1000),
  CONSTRAINT jobs_attempt_check CHECK (attempt >= 0),
  CONSTRAINT jobs_max_retries_check CHECK (max_retries IS NULL OR max_retries >= 0),
  CONSTRAINT jobs_unique_key_check CHECK (unique_key IS NULL OR (unique_key <> '' AND length(unique_key) <= 1000)),
  CONSTRAINT jobs_errors_check CHECK (jsonb_typeof(errors) = 'array')
);

-- Claim: the producer walks runnable rows of its queues in priority order. Partial, so the
-- index holds only the (few) available rows however many finished rows the table keeps.
CREATE INDEX jobs_claim_idx ON docket.jobs (queue, priority, run_at, id) WHERE state = 'available';
-- Quotas count running jobs per kind; the rescuer finds running jobs of dead workers.
-- The fenced writes (finish, progress, crawl pages) must not use it: they check the fence with
-- `state IS NOT DISTINCT FROM 'running'`, which this index's predicate does not match, and find
-- each row by primary key (batches: a LATERAL probe per item that locks the row, then the update
-- by row address, so no join order is left to the planner). With statistics taken while few jobs
-- ran, a plain `state = 'running'` join picked this index (1 row expected) and walked every
-- running entry, live and dead, per batch of outcomes: 10 s per batch in the bloat benchmark;
-- and a plain join to unnest() could walk all of jobs_pkey, or rescan the items per row.
CREATE INDEX jobs_running_idx ON docket.jobs (kind, worker) WHERE state = 'running';
-- The scheduler promotes due scheduled/retryable rows.
CREATE INDEX jobs_waiting_idx ON docket.jobs (run_at) WHERE state IN ('scheduled', 'retryable');
-- unique_key: at most one unfinished job per key; a partial unique index makes it race-free.
CREATE UNIQUE INDEX jobs_unique_key_idx ON docket.jobs (unique_key)
  WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'running', 'retryable');
-- Pruning and "recent failures" walk finished rows by age.
CREATE INDEX jobs_finished_idx ON docket.jobs (state, finished_at)
  WHERE state IN ('completed', 'failed', 'cancelled');

-- Crawls: a crawl job walks a paginated source into docket.crawl_cache, one transaction per
-- page, and activates it into docket.live_items (or the user's table) in one transaction.
CREATE TYPE docket.crawl_status AS ENUM ('waiting', 'crawling', 'retrying', 'finalizing', 'done', 'failed');

-- One row per crawl job: its progress and its checkpoint (the next URL to fetch).
CREATE TABLE docket.crawls (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id          bigint NOT NULL UNIQUE,
  kind            text NOT NULL,
  collection      text NOT NULL,
  status          docket.crawl_status NOT NULL DEFAULT 'waiting',
  pages           int NOT NULL DEFAULT 0,  -- pages fetched and stored
  items           int NOT NULL DEFAULT 0,  -- distinct items in the cache
  next_url        text,                    -- where to resume; NULL: not started
  cursor          text,                    -- the cursor or next link the source gave last
  last_error      text,
  last_request_at timestamptz,
  inserted_at     timestamptz NOT NULL DEFAULT now(),
  started_at      timestamptz,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz
);
-- At most one unfinished crawl per collection.
CREATE UNIQUE INDEX crawls_live_collection_idx ON docket.crawls (collection)
  WHERE status IN ('waiting', 'crawling', 'retrying', 'finalizing');
CREATE INDEX crawls_unfinished_idx ON docket.crawls (job_id) WHERE status NOT IN ('done', 'failed');

CREATE TABLE docket.crawl_cache (
  crawl_id bigint NOT NULL REFERENCES docket.crawls (id) ON DELETE CASCADE,
  key      text NOT NULL,
  item     jsonb NOT NULL,
  page     int NOT NULL,
  PRIMARY KEY (crawl_id, key)
);

-- The live set readers use: one complete crawl per collection.
CREATE TABLE docket.live_items (
  collection   text NOT NULL,
  key          text NOT NULL,
  item         jsonb NOT NULL,
  crawl_id     bigint NOT NULL,
  activated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (collection, key)
);

-- Politeness across the fleet: one request in flight per host (a lease that expires if its
-- holder dies) and the earliest time the next request may start (delay, Retry-After).
CREATE TABLE docket.crawl_hosts (
  host       text PRIMARY KEY,
  holder     text,
  worker     uuid,         -- the holder's worker: its lease ends with the worker's, not later
  busy_until timestamptz,
  not_before timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);

-- The jobs table churns: vacuum it early and often so claims keep scanning small indexes.
ALTER TABLE docket.jobs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
                             autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);

-- NOTIFY once per INSERT statement (not per row) for each queue that got runnable jobs.
-- Workers treat it as a wake-up hint; polling remains the correctness path.
CREATE FUNCTION docket.jobs_notify_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('docket_jobs', q.queue)
    FROM (SELECT DISTINCT n.queue FROM new_rows n WHERE n.state = 'available') q;
  RETURN NULL;
END $$;

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON docket.jobs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION docket.jobs_notify_insert();

-- The retry budget a job runs with: its own max_retries, else its kind's (seeded from the worker
-- config, so a setting there applies to jobs enqueued before or after), else 20.
CREATE FUNCTION docket.max_retries_of(job_max int, job_kind text) RETURNS int
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT coalesce(job_max, (SELECT k.max_retries FROM docket.kinds k WHERE k.kind = job_kind), 20)
$$;

-- Validation shared by enqueue and enqueue_many; raises 22023 (invalid_parameter_value) with a
-- message that names the field, so SQL, CLI and HTTP users all see the same clear error.
CREATE FUNCTION docket.check_job(kind text, args jsonb, queue text, priority int, max_retries int,
                                 unique_key text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF kind IS NULL OR btrim(kind) = '' THEN
    RAISE EXCEPTION 'kind must be a non-empty string' USING ERRCODE = '22023';
  END IF;
  IF length(kind) > 200 OR kind ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'kind must be at most 200 printable characters' USING ERRCODE = '22023';
  END IF;
  IF queue IS NULL OR btrim(queue) = '' OR length(queue) > 200 OR queue ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'queue must be a non-empty string of at most 200 printable characters' USING ERRCODE = '22023';
  END IF;
  IF args IS NULL OR jsonb_typeof(args) <> 'object' THEN
    RAISE EXCEPTION 'args must be a JSON object, got %', coalesce(jsonb_typeof(args), 'null') USING ERRCODE = '22023';
  END IF;
  IF pg_column_size(args) > 1048576 THEN
    RAISE EXCEPTION 'args is % bytes; the limit is 1 MiB', pg_column_size(args) USING ERRCODE = '54000';
  END IF;
  IF priority IS NULL OR priority < 0 OR priority > 1000 THEN
    RAISE EXCEPTION 'priority must be between 0 (runs first) and 1000, got %', priority USING ERRCODE = '22023';
  END IF;
  IF max_retries IS NOT NULL AND max_retries < 0 THEN
    RAISE EXCEPTION 'max_retries must be >= 0, got %', max_retries USING ERRCODE = '22023';
  END IF;
  IF unique_key IS NOT NULL AND (unique_key = '' OR length(unique_key) > 1000) THEN
    RAISE EXCEPTION 'unique_key must be 1 to 1000 characters' USING ERRCODE = '22023';
  END IF;
END $$;

-- Enqueue returning whether a row was inserted (false: a live job with the same unique_key
-- exists and its id is returned). Race-free: ON CONFLICT on the partial unique index waits for
-- a concurrent inserter of the same key and then sees its committed row. A crawl kind's job takes
-- unique_key 'crawl:<collection>' (a second request while one runs returns the running one) and
-- gets its crawl row at once, status 'waiting'.
CREATE FUNCTION docket.enqueue_job(kind text, args jsonb DEFAULT '{}', queue text DEFAULT 'default',
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
  PERFORM docket.check_job(kind, args, queue, priority, max_retries, unique_key);
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

-- The public enqueue: returns the job id (the existing job's id for a live duplicate unique_key).
-- Works inside the caller's transaction: the job exists only if that transaction commits.
CREATE FUNCTION docket.enqueue(kind text, args jsonb DEFAULT '{}', queue text DEFAULT 'default',
                               priority int DEFAULT 0, run_at timestamptz DEFAULT now(),
                               max_retries int DEFAULT NULL, unique_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE sql AS $$
  SELECT (docket.enqueue_job(kind, args, queue, priority, run_at, max_retries, unique_key)).id
$$;

-- Bulk enqueue: one call for a whole JSON array of jobs (fields as in enqueue), honouring
-- unique_key: a live duplicate, also one earlier in the same batch, yields that job's id with
-- created = false. Results come back in input order. Ids are drawn from the sequence first, so
-- each input row knows its id whatever order the insert runs in.
CREATE FUNCTION docket.enqueue_many(jobs jsonb) RETURNS TABLE (id bigint, created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_n int;
  v_ids bigint[];
  v_inserted bigint[];
  v_bad record;
BEGIN
  IF jobs IS NULL OR jsonb_typeof(jobs) <> 'array' THEN
    RAISE EXCEPTION 'jobs must be a JSON array of job objects' USING ERRCODE = '22023';
  END IF;
  v_n := jsonb_array_length(jobs);
  IF v_n = 0 THEN RETURN; END IF;
  SELECT e.ord, jsonb_typeof(e.item) AS t INTO v_bad
    FROM jsonb_array_elements(jobs) WITH ORDINALITY e(item, ord)
   WHERE jsonb_typeof(e.item) <> 'object' OR NOT (e.item ? 'kind') LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'jobs[%] must be an object with a "kind"', v_bad.ord - 1 USING ERRCODE = '22023';
  END IF;
  PERFORM docket.check_job(e.item ->> 'kind', coalesce(e.item -> 'args', '{}'), coalesce(e.item ->> 'queue', 'default'),
                           coalesce((e.item ->> 'priority')::int, 0), (e.item ->> 'max_retries')::int,
                           e.item ->> 'unique_key')
     FROM jsonb_array_elements(jobs) e(item);
  v_ids := ARRAY(SELECT nextval(pg_get_serial_sequence('docket.jobs', 'id')) FROM generate_series(1, v_n));

  WITH ins AS (
  INSERT INTO docket.jobs AS j (id, kind, args, queue, priority, run_at, max_retries, unique_key, state)
  OVERRIDING SYSTEM VALUE
  SELECT v_ids[e.ord], e.item ->> 'kind', coalesce(e.item -> 'args', '{}'), coalesce(e.item ->> 'queue', 'default'),
         coalesce((e.item ->> 'priority')::int, 0), coalesce((e.item ->> 'run_at')::timestamptz, now()),
         (e.item ->> 'max_retries')::int,
         coalesce(e.item ->> 'unique_key', 'crawl:' || k.crawl_collection),
         CASE WHEN coalesce((e.item ->> 'run_at')::timestamptz, now()) > now() THEN 'scheduled'
              ELSE 'available' END::docket.job_state
    FROM jsonb_array_elements(jobs) WITH ORDINALITY e(item, ord)
    LEFT JOIN docket.kinds k ON k.kind = e.item ->> 'kind' AND k.crawl_collection IS NOT NULL
   ORDER BY e.ord
  ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'running', 'retryable')
  DO NOTHING
  RETURNING j.id, j.kind)
  SELECT array_agg(ins.id) INTO v_inserted FROM ins;

  INSERT INTO docket.crawls (job_id, kind, collection)
  SELECT j.id, j.kind, k.crawl_collection
    FROM unnest(v_inserted) AS x(id)
    JOIN docket.jobs j ON j.id = x.id
    JOIN docket.kinds k ON k.kind = j.kind AND k.crawl_collection IS NOT NULL;

  -- A new statement: its snapshot sees the rows just inserted and any duplicate that a
  -- concurrent transaction committed while our insert waited on it.
  RETURN QUERY
    SELECT coalesce(mine.id, other.id), mine.id IS NOT NULL
      FROM unnest(v_ids) WITH ORDINALITY AS a(id, ord)
      JOIN jsonb_array_elements(jobs) WITH ORDINALITY e(item, ord) ON e.ord = a.ord
      LEFT JOIN unnest(v_inserted) AS mine(id) ON mine.id = a.id
      LEFT JOIN docket.kinds k ON k.kind = e.item ->> 'kind' AND k.crawl_collection IS NOT NULL
      LEFT JOIN LATERAL (
        SELECT j.id FROM docket.jobs j
         WHERE mine.id IS NULL AND j.unique_key = coalesce(e.item ->> 'unique_key', 'crawl:' || k.crawl_collection)
           AND j.state IN ('available', 'scheduled', 'running', 'retryable')) other ON true
     ORDER BY a.ord;
END $$;

-- A job as JSON for APIs: every column (timestamps in ISO 8601) with the max_retries it runs with.
CREATE FUNCTION docket.job_json(j docket.jobs) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT to_jsonb(j) || jsonb_build_object('max_retries', docket.max_retries_of(j.max_retries, j.kind))
$$;

-- enqueue_many that also returns each job as JSON, in input order: one round trip for callers
-- that answer with the job (the HTTP API merges concurrent POSTs into one call).
CREATE FUNCTION docket.enqueue_many_jobs(jobs jsonb) RETURNS TABLE (id bigint, created boolean, job jsonb)
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
      JOIN docket.jobs j ON j.id = x.id
     ORDER BY x.ord;
END $$;

-- Claim up to p_limit available jobs of the given kinds from the given queues, in priority
-- order: the building block of docket.claim. The update finds its rows by `id = ANY(array)`, a
-- primary-key lookup in every plan: a join with the CTE let the generic plan (which does not know
-- p_limit) choose a merge join that walks the whole primary key. Each queue is read through its own LATERAL scan
-- with `queue = name`, so the partial claim index returns rows already in (priority, run_at, id)
-- order and LIMIT stops after p_limit rows; `queue = ANY(array)` would lose that order and sort
-- every available row. With several queues the merge may lock up to p_limit rows per queue and
-- claim only p_limit of them; the rest are released when the statement commits.
CREATE FUNCTION docket.claim_from(p_worker uuid, p_queues text[], p_kinds text[], p_limit int)
RETURNS TABLE (id bigint, kind text, queue text, args jsonb, attempt int, max_retries int,
               priority smallint, run_at timestamptz, inserted_at timestamptz, unique_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
    WITH c AS (
      SELECT x.id FROM unnest(p_queues) AS q(name)
      CROSS JOIN LATERAL (
        SELECT j.id, j.priority, j.run_at FROM docket.jobs j
         WHERE j.state = 'available' AND j.queue = q.name AND j.kind = ANY (p_kinds)
         ORDER BY j.priority, j.run_at, j.id
         LIMIT p_limit
         FOR UPDATE SKIP LOCKED) x
      ORDER BY x.priority, x.run_at, x.id
      LIMIT p_limit)
    UPDATE docket.jobs j
       SET state = 'running', attempt = j.attempt + 1, started_at = now(), finished_at = NULL, worker = p_worker
     WHERE j.id = ANY (ARRAY(SELECT c.id FROM c))
    RETURNING j.id, j.kind, j.queue, j.args, j.attempt,
              coalesce(j.max_retries, (SELECT k.max_retries FROM docket.kinds k WHERE k.kind = j.kind), 20),
              j.priority, j.run_at, j.inserted_at, j.unique_key;
END $$;

-- Claim up to p_limit jobs for one worker, in priority order, honouring paused queues and the
-- per-kind global quotas. Quotas are race-free: for each limited kind the worker handles, the
-- kind's row is locked (in kind order, so claimers never deadlock) and the running count is read
-- in a later statement, whose snapshot includes every claim committed before the lock was granted.
-- Running jobs only ever become running here, so no one can add to the count while we hold the lock.
-- Call it in its own READ COMMITTED transaction (autocommit): it relies on a fresh snapshot per
-- statement.
CREATE FUNCTION docket.claim(p_worker uuid, p_queues text[], p_kinds text[], p_limit int)
RETURNS TABLE (id bigint, kind text, queue text, args jsonb, attempt int, max_retries int,
               priority smallint, run_at timestamptz, inserted_at timestamptz, unique_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_queues text[];
  v_open text[];      -- kinds without a quota
  v_limited text[];   -- kinds with a quota this worker handles
  v_left int := p_limit;
  v_slots int;
  v_kind text;
  v_max int;
  v_got int;
BEGIN
  IF p_limit <= 0 THEN RETURN; END IF;
  SELECT array_agg(q) INTO v_queues FROM unnest(p_queues) q
   WHERE NOT EXISTS (SELECT 1 FROM docket.queues dq WHERE dq.name = q AND dq.paused_at IS NOT NULL);
  IF v_queues IS NULL THEN RETURN; END IF;

  SELECT array_agg(k.kind ORDER BY k.kind) INTO v_limited FROM docket.kinds k
   WHERE k.kind = ANY (p_kinds) AND k.max_running IS NOT NULL;

  IF v_limited IS NULL THEN
    RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, p_kinds, p_limit);
    RETURN;
  END IF;

  -- Limited kinds first: they are the scarce ones. Lock each kind's row, then count.
  FOR v_kind, v_max IN
    SELECT k.kind, k.max_running FROM docket.kinds k
     WHERE k.kind = ANY (v_limited)
     ORDER BY k.kind
     FOR UPDATE
  LOOP
    EXIT WHEN v_left <= 0;
    CONTINUE WHEN v_max IS NULL;  -- limit removed while we waited for the lock
    SELECT v_max - count(*) INTO v_slots FROM docket.jobs j WHERE j.state = 'running' AND j.kind = v_kind;
    CONTINUE WHEN v_slots <= 0;
    RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, ARRAY[v_kind], least(v_slots, v_left));
    GET DIAGNOSTICS v_got = ROW_COUNT;
    v_left := v_left - v_got;
  END LOOP;

  SELECT array_agg(k) INTO v_open FROM unnest(p_kinds) k WHERE k <> ALL (v_limited);
  IF v_left > 0 AND v_open IS NOT NULL THEN
    RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, v_open, v_left);
  END IF;
END $$;

-- The one fenced finishing write, batched, and optionally a claim in the same transaction.
-- Each item applies only if the job is still running, held by this worker, at the same attempt:
-- a worker that lost the job (rescued, cancelled and re-run) changes nothing.
-- Items: ids, attempts, outcomes (complete|retry|fail|cancel|snooze|release), delays in seconds
-- (retry, snooze), results (complete), errors (recorded with the attempt and time), and the
-- max_retries each job ran with (as claimed): a retry past it fails the job.
-- Then, when p_limit > 0, up to p_limit jobs are claimed through docket.claim. Under a quota every
-- freed slot is a claim: one round trip and one commit instead of two. The outcomes are written
-- first, so the running count docket.claim reads (after taking the kind's lock) already excludes
-- them, and the claim is the same docket.claim as always: the limit holds.
-- Rows: the items that applied with the state they reached (claimed = false), then the claimed
-- jobs (claimed = true, state 'running').
CREATE FUNCTION docket.finish_and_claim(p_worker uuid, p_ids bigint[], p_attempts int[], p_outcomes text[],
                                        p_delays float8[], p_results jsonb[], p_errors text[], p_max_retries int[],
                                        p_queues text[], p_kinds text[], p_limit int)
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
             c.unique_key, extract(epoch FROM now() - greatest(c.run_at, c.inserted_at))::float8
        FROM docket.claim(p_worker, p_queues, p_kinds, p_limit) c;
  END IF;
END $$;

-- The global quota: at no instant do more than max_running jobs of the kind run across the fleet.
-- NULL removes the limit. 0 holds the kind (nothing new starts).
CREATE FUNCTION docket.set_limit(kind text, max_running int) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  IF kind IS NULL OR btrim(kind) = '' THEN
    RAISE EXCEPTION 'kind must be a non-empty string' USING ERRCODE = '22023';
  END IF;
  IF max_running IS NOT NULL AND max_running < 0 THEN
    RAISE EXCEPTION 'max_running must be >= 0 (or NULL to remove the limit), got %', max_running
      USING ERRCODE = '22023';
  END IF;
  INSERT INTO docket.kinds AS k (kind, max_running) VALUES (set_limit.kind, set_limit.max_running)
  ON CONFLICT ON CONSTRAINT kinds_pkey
  DO UPDATE SET max_running = excluded.max_running, updated_at = now();
  PERFORM pg_notify('docket_control', 'limit');
END $$;

CREATE FUNCTION docket.pause(queue text) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  IF queue IS NULL OR btrim(queue) = '' THEN
    RAISE EXCEPTION 'queue must be a non-empty string' USING ERRCODE = '22023';
  END IF;
  INSERT INTO docket.queues AS q (name, paused_at) VALUES (pause.queue, now())
  ON CONFLICT (name) DO UPDATE SET paused_at = coalesce(q.paused_at, now()), updated_at = now();
  PERFORM pg_notify('docket_control', 'pause');
END $$;

CREATE FUNCTION docket.resume(queue text) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  IF queue IS NULL OR btrim(queue) = '' THEN
    RAISE EXCEPTION 'queue must be a non-empty string' USING ERRCODE = '22023';
  END IF;
  UPDATE docket.queues q SET paused_at = NULL, updated_at = now() WHERE q.name = resume.queue;
  PERFORM pg_notify('docket_jobs', resume.queue);
END $$;

-- Cancel: a waiting job is cancelled at once; a running job gets a cancel request that its worker
-- acts on (it stops the job and records `cancelled`; if the worker is dead the rescuer does).
-- Returns false when the job had already finished. Raises when there is no such job.
CREATE FUNCTION docket.cancel(id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_state docket.job_state;
BEGIN
  SELECT j.state INTO v_state FROM docket.jobs j WHERE j.id = cancel.id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no job with id %', cancel.id USING ERRCODE = 'P0002';
  END IF;
  IF v_state IN ('completed', 'failed', 'cancelled') THEN
    RETURN false;
  ELSIF v_state = 'running' THEN
    UPDATE docket.jobs j SET cancel_requested_at = coalesce(j.cancel_requested_at, now()) WHERE j.id = cancel.id;
    PERFORM pg_notify('docket_cancel', cancel.id::text);
  ELSE
    UPDATE docket.jobs j SET state = 'cancelled', finished_at = now() WHERE j.id = cancel.id;
  END IF;
  RETURN true;
END $$;

-- Retry: run a finished or waiting job again now. A job out of retries gets one more attempt; a
-- finished crawl job crawls again from the first page. Raises for a running job (it is already
-- being tried) and for an unknown id.
CREATE FUNCTION docket.retry(id bigint) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_state docket.job_state;
  v_queue text;
BEGIN
  SELECT j.state, j.queue INTO v_state, v_queue FROM docket.jobs j WHERE j.id = retry.id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no job with id %', retry.id USING ERRCODE = 'P0002';
  END IF;
  IF v_state = 'running' THEN
    RAISE EXCEPTION 'job % is running; cancel it first or wait for it to finish', retry.id USING ERRCODE = '55000';
  END IF;
  BEGIN
    UPDATE docket.jobs j
       SET state = 'available', run_at = now(), finished_at = NULL, cancel_requested_at = NULL,
           max_retries = CASE WHEN j.attempt >= docket.max_retries_of(j.max_retries, j.kind) THEN j.attempt
                              ELSE j.max_retries END
     WHERE j.id = retry.id;
    UPDATE docket.crawls c
       SET status = 'waiting', pages = 0, items = 0, next_url = NULL, cursor = NULL, last_error = NULL,
           started_at = NULL, finished_at = NULL, updated_at = now()
     WHERE c.job_id = retry.id AND c.status IN ('done', 'failed');
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'job % cannot be retried: another unfinished job holds its unique_key (or its crawl''s collection)',
      retry.id USING ERRCODE = '23505';
  END;
  PERFORM pg_notify('docket_jobs', v_queue);
END $$;

-- Maintenance -----------------------------------------------------------------------------
-- Every worker runs these on its own schedule; they are safe to run concurrently (SKIP LOCKED,
-- fenced on state), so no job's rescue depends on any one process, or a leader, being alive.

-- The state a running job moves to when its worker reports an outcome. A pending cancel request
-- wins over anything but completion; a retry past max_retries fails the job.
CREATE FUNCTION docket.next_state(outcome text, attempt int, max_retries int, cancel_requested boolean)
RETURNS docket.job_state
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN outcome = 'complete' THEN 'completed'
    WHEN outcome = 'fail' THEN 'failed'
    WHEN outcome = 'cancel' OR cancel_requested THEN 'cancelled'
    WHEN outcome = 'retry' AND attempt > max_retries THEN 'failed'
    WHEN outcome = 'retry' THEN 'retryable'
    WHEN outcome = 'snooze' THEN 'scheduled'
    WHEN outcome = 'release' THEN 'available'
  END::docket.job_state
$$;

-- Rescue: workers whose heartbeat is older than their lease are marked dead (for good: a worker
-- that wakes up must register again), then the running jobs of dead or unknown workers go back
-- to `available` (or `failed` when out of retries, `cancelled` when a cancel was pending). The
-- attempt the crash used stays counted and an error names the lost worker. FOR UPDATE re-checks
-- state = 'running', so a job that completed meanwhile is left alone.
CREATE FUNCTION docket.rescue(p_batch int DEFAULT 1000) RETURNS int
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

-- Promote due scheduled/retryable jobs to available and wake the workers of their queues.
-- Returns how many moved and the seconds until the next one is due (NULL: none waiting), so a
-- worker can sleep exactly until then.
CREATE FUNCTION docket.promote(p_batch int DEFAULT 1000, OUT promoted int, OUT next_due_in float8)
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
  SELECT extract(epoch FROM min(j.run_at) - now()) INTO next_due_in
    FROM docket.jobs j WHERE j.state IN ('scheduled', 'retryable');
END $$;

-- Delete finished jobs past their retention, in batches, and forget workers long dead.
-- (Rows are deleted by `id = ANY(array)`: primary-key lookups whatever the planner thinks of
-- the batch's size; `id IN (subquery)` let it pick a join that walks the whole primary key.)
CREATE FUNCTION docket.prune(p_completed interval DEFAULT '24 hours', p_failed interval DEFAULT '7 days',
                             p_batch int DEFAULT 5000) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  v_n int;
  v_total int := 0;
BEGIN
  DELETE FROM docket.jobs j WHERE j.id = ANY (ARRAY(
    SELECT x.id FROM docket.jobs x
     WHERE x.state = 'completed' AND x.finished_at < now() - p_completed
     LIMIT p_batch FOR UPDATE SKIP LOCKED));
  GET DIAGNOSTICS v_n = ROW_COUNT;
  v_total := v_total + v_n;
  DELETE FROM docket.jobs j WHERE j.id = ANY (ARRAY(
    SELECT x.id FROM docket.jobs x
     WHERE x.state IN ('failed', 'cancelled') AND x.finished_at < now() - p_failed
     LIMIT p_batch FOR UPDATE SKIP LOCKED));
  GET DIAGNOSTICS v_n = ROW_COUNT;
  v_total := v_total + v_n;
  DELETE FROM docket.workers w
   WHERE w.dead_at < now() - interval '1 day'
     AND NOT EXISTS (SELECT 1 FROM docket.jobs j WHERE j.state = 'running' AND j.worker = w.id);
  RETURN v_total;
END $$;

-- Ops views -------------------------------------------------------------------------------

-- Jobs per queue and state.
CREATE VIEW docket.queue_states AS
  SELECT j.queue, j.state, count(*) AS jobs
    FROM docket.jobs j GROUP BY j.queue, j.state;

-- Per queue: waiting and running counts, the oldest runnable job's age, and the paused flag.
CREATE VIEW docket.queue_summary AS
  WITH names AS (SELECT DISTINCT j.queue AS name FROM docket.jobs j
                 UNION SELECT q.name FROM docket.queues q)
  SELECT n.name AS queue,
         (SELECT count(*) FROM docket.jobs j WHERE j.queue = n.name AND j.state = 'available') AS available,
         (SELECT count(*) FROM docket.jobs j WHERE j.queue = n.name AND j.state = 'running') AS running,
         (SELECT count(*) FROM docket.jobs j WHERE j.queue = n.name AND j.state IN ('scheduled', 'retryable')) AS waiting,
         (SELECT min(j.run_at) FROM docket.jobs j WHERE j.queue = n.name AND j.state = 'available') AS oldest_available_at,
         extract(epoch FROM now() - (SELECT min(j.run_at) FROM docket.jobs j
                                      WHERE j.queue = n.name AND j.state = 'available'))::float8 AS oldest_available_age_s,
         q.paused_at IS NOT NULL AS paused
    FROM names n LEFT JOIN docket.queues q ON q.name = n.name;

-- Running jobs per kind against the kind's quota.
CREATE VIEW docket.kind_limits AS
  WITH running AS (SELECT j.kind, count(*) AS running FROM docket.jobs j WHERE j.state = 'running' GROUP BY j.kind)
  SELECT coalesce(k.kind, r.kind) AS kind, k.max_running, coalesce(r.running, 0) AS running, k.max_retries
    FROM docket.kinds k FULL JOIN running r ON r.kind = k.kind;

-- Failed and retrying jobs with their last error, newest first.
CREATE VIEW docket.recent_failures AS
  SELECT j.id, j.kind, j.queue, j.state, j.attempt, docket.max_retries_of(j.max_retries, j.kind) AS max_retries,
         coalesce(j.finished_at, j.run_at) AS at,
         j.errors -> -1 ->> 'error' AS last_error
    FROM docket.jobs j
   WHERE j.state IN ('failed', 'retryable')
   ORDER BY coalesce(j.finished_at, (j.errors -> -1 ->> 'at')::timestamptz) DESC NULLS LAST;

-- Running jobs whose worker's lease has expired (or whose worker is unknown): the rescuer's work.
CREATE VIEW docket.stuck_jobs AS
  SELECT j.id, j.kind, j.queue, j.attempt, j.started_at, j.worker, w.name AS worker_name,
         w.heartbeat_at, now() - w.heartbeat_at AS heartbeat_age
    FROM docket.jobs j LEFT JOIN docket.workers w ON w.id = j.worker
   WHERE j.state = 'running'
     AND (w.id IS NULL OR w.dead_at IS NOT NULL OR w.heartbeat_at < now() - w.lease);

-- Live workers.
CREATE VIEW docket.live_workers AS
  SELECT w.id, w.name, w.host, w.pid, w.queues, w.concurrency, w.started_at, w.heartbeat_at,
         now() - w.heartbeat_at AS heartbeat_age, w.stopping_at IS NOT NULL AS stopping,
         (SELECT count(*) FROM docket.jobs j WHERE j.state = 'running' AND j.worker = w.id) AS running
    FROM docket.workers w
   WHERE w.dead_at IS NULL AND w.heartbeat_at >= now() - w.lease;

-- Crawl execution -------------------------------------------------------------------------

-- Crawls whose job ended without finishing them (rescued past its retries, cancelled, deleted)
-- fail, and their cache rows go. Run by every worker with its rescue; safe concurrently.
CREATE FUNCTION docket.crawl_sweep() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  v_n int;
BEGIN
  WITH ended AS (
    SELECT c.id, j.state FROM docket.crawls c LEFT JOIN docket.jobs j ON j.id = c.job_id
     WHERE c.status NOT IN ('done', 'failed')
       AND (j.id IS NULL OR j.state IN ('completed', 'failed', 'cancelled'))
     FOR UPDATE OF c SKIP LOCKED),
  failed AS (
    UPDATE docket.crawls c
       SET status = 'failed', finished_at = now(), updated_at = now(),
           last_error = coalesce(c.last_error || '; ', '') || 'the crawl''s job ended ' ||
                        coalesce(ended.state::text, 'deleted') || ' before the crawl finished'
      FROM ended WHERE c.id = ended.id
    RETURNING c.id),
  purged AS (
    DELETE FROM docket.crawl_cache cc USING failed WHERE cc.crawl_id = failed.id)
  SELECT count(*) INTO v_n FROM failed;
  RETURN v_n;
END $$;

-- The crawl executor's writes. Each is one statement (one transaction) and is fenced: it takes
-- the job's row lock and proceeds only while the job is running under this worker at this
-- attempt, so a worker that lost its lease can never write a page or activate. They return
-- false (or nothing) when the job is no longer ours.

-- Whether job p_job is still ours; locks its row until the end of the transaction.
CREATE FUNCTION docket.crawl_owns(p_job bigint, p_worker uuid, p_attempt int) RETURNS boolean
LANGUAGE sql AS $$
  SELECT EXISTS (SELECT 1 FROM docket.jobs j
                  WHERE j.id = p_job  -- by primary key, see jobs_running_idx
                    AND j.state IS NOT DISTINCT FROM 'running' AND j.worker = p_worker AND j.attempt = p_attempt
                  FOR UPDATE)
$$;

-- Start or resume the crawl of a job: its crawl row (created if the job was enqueued before the
-- kind was known as a crawl), status crawling, and where to resume. duplicate_of names a crawl
-- of the same collection that is already running.
CREATE FUNCTION docket.crawl_start(p_job bigint, p_worker uuid, p_attempt int, p_kind text, p_collection text,
                                   p_first_url text)
RETURNS TABLE (crawl_id bigint, status docket.crawl_status, pages int, items int, next_url text,
               last_error text, duplicate_of bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_id bigint;
  v_other bigint;
BEGIN
  IF NOT docket.crawl_owns(p_job, p_worker, p_attempt) THEN RETURN; END IF;
  SELECT c.id INTO v_id FROM docket.crawls c WHERE c.job_id = p_job;
  IF v_id IS NULL THEN
    BEGIN
      INSERT INTO docket.crawls (job_id, kind, collection) VALUES (p_job, p_kind, p_collection) RETURNING id INTO v_id;
    EXCEPTION WHEN unique_violation THEN
      SELECT c.id INTO v_other FROM docket.crawls c
       WHERE c.collection = p_collection AND c.status IN ('waiting', 'crawling', 'retrying', 'finalizing');
      RETURN QUERY SELECT NULL::bigint, NULL::docket.crawl_status, 0, 0, NULL::text, NULL::text, v_other;
      RETURN;
    END;
  END IF;
  UPDATE docket.crawls c
     SET status = CASE WHEN c.status IN ('waiting', 'retrying') THEN 'crawling' ELSE c.status END,
         started_at = coalesce(c.started_at, now()),
         next_url = coalesce(c.next_url, p_first_url),
         updated_at = now()
   WHERE c.id = v_id;
  RETURN QUERY SELECT c.id, c.status, c.pages, c.items, c.next_url, c.last_error, NULL::bigint
                 FROM docket.crawls c WHERE c.id = v_id;
END $$;

-- One page: its items into the cache (a key seen again keeps the newest item), the checkpoint
-- advanced to p_next_url (NULL: that was the last page), and the job's progress, in one transaction.
-- p_items: [{"key": text, "item": any}], keys unique within the page.
CREATE FUNCTION docket.crawl_page(p_crawl bigint, p_job bigint, p_worker uuid, p_attempt int, p_items jsonb,
                                  p_next_url text, p_cursor text)
RETURNS TABLE (pages int, items int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_new int;
  v_page int;
BEGIN
  IF NOT docket.crawl_owns(p_job, p_worker, p_attempt) THEN RETURN; END IF;
  SELECT c.pages + 1 INTO v_page FROM docket.crawls c WHERE c.id = p_crawl FOR UPDATE;
  WITH ins AS (
    INSERT INTO docket.crawl_cache AS cc (crawl_id, key, item, page)
    SELECT p_crawl, e ->> 'key', e -> 'item', v_page FROM jsonb_array_elements(p_items) e
    ON CONFLICT (crawl_id, key) DO UPDATE SET item = excluded.item, page = excluded.page
    RETURNING (xmax = 0) AS fresh)
  SELECT count(*) FILTER (WHERE fresh) INTO v_new FROM ins;
  -- No next URL: this was the last page, so the crawl is finalizing (a crash from here on
  -- resumes into activation, not into page one).
  UPDATE docket.crawls c
     SET pages = v_page, items = c.items + v_new, next_url = p_next_url, cursor = p_cursor,
         status = CASE WHEN p_next_url IS NULL THEN 'finalizing' ELSE 'crawling' END::docket.crawl_status,
         last_error = NULL, last_request_at = now(), updated_at = now()
   WHERE c.id = p_crawl;
  UPDATE docket.jobs j
     SET progress = jsonb_build_object('crawl_id', p_crawl, 'status', c.status, 'pages', c.pages,
                                       'items', c.items, 'next_url', c.next_url)
    FROM docket.crawls c
   WHERE j.id = p_job AND c.id = p_crawl;
  RETURN QUERY SELECT c.pages, c.items FROM docket.crawls c WHERE c.id = p_crawl;
END $$;

-- A page failed: record the error (status retrying), or, when p_final, fail the crawl and drop
-- its cache; the live table is untouched.
CREATE FUNCTION docket.crawl_error(p_crawl bigint, p_job bigint, p_worker uuid, p_attempt int, p_error text,
                                   p_final boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT docket.crawl_owns(p_job, p_worker, p_attempt) THEN RETURN false; END IF;
  UPDATE docket.crawls c
     SET status = CASE WHEN p_final THEN 'failed' ELSE 'retrying' END::docket.crawl_status,
         last_error = p_error, last_request_at = now(), updated_at = now(),
         finished_at = CASE WHEN p_final THEN now() END
   WHERE c.id = p_crawl;
  IF p_final THEN
    DELETE FROM docket.crawl_cache cc WHERE cc.crawl_id = p_crawl;
  END IF;
  UPDATE docket.jobs j
     SET progress = jsonb_build_object('crawl_id', c.id, 'status', c.status, 'pages', c.pages, 'items', c.items,
                                       'last_error', c.last_error)
    FROM docket.crawls c WHERE j.id = p_job AND c.id = p_crawl;
  RETURN true;
END $$;

-- The last page is in: status finalizing (visible to users while activation runs).
CREATE FUNCTION docket.crawl_finalizing(p_crawl bigint, p_job bigint, p_worker uuid, p_attempt int) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT docket.crawl_owns(p_job, p_worker, p_attempt) THEN RETURN false; END IF;
  UPDATE docket.crawls c SET status = 'finalizing', next_url = NULL, updated_at = now() WHERE c.id = p_crawl;
  UPDATE docket.jobs j SET progress = jsonb_build_object('crawl_id', c.id, 'status', 'finalizing', 'pages', c.pages,
                                                         'items', c.items)
    FROM docket.crawls c WHERE j.id = p_job AND c.id = p_crawl;
  RETURN true;
END $$;

-- The crawl is activated: cache cleared, status done. Runs inside the activation transaction.
CREATE FUNCTION docket.crawl_done(p_crawl bigint, p_job bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM docket.crawl_cache cc WHERE cc.crawl_id = p_crawl;
  UPDATE docket.crawls c SET status = 'done', finished_at = now(), updated_at = now() WHERE c.id = p_crawl;
  UPDATE docket.jobs j SET progress = jsonb_build_object('crawl_id', c.id, 'status', 'done', 'pages', c.pages,
                                                         'items', c.items)
    FROM docket.crawls c WHERE j.id = p_job AND c.id = p_crawl;
END $$;

-- Default activation, in one transaction: the collection's rows in docket.live_items become
-- exactly the cache's rows (gone at the source: deleted; changed: updated; new: inserted).
-- Readers see the old complete set or the new one, never a mix.
CREATE FUNCTION docket.crawl_activate(p_crawl bigint, p_job bigint, p_worker uuid, p_attempt int) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  v_collection text;
BEGIN
  IF NOT docket.crawl_owns(p_job, p_worker, p_attempt) THEN RETURN false; END IF;
  SELECT c.collection INTO v_collection FROM docket.crawls c WHERE c.id = p_crawl FOR UPDATE;
  DELETE FROM docket.live_items l
   WHERE l.collection = v_collection
     AND NOT EXISTS (SELECT 1 FROM docket.crawl_cache cc WHERE cc.crawl_id = p_crawl AND cc.key = l.key);
  INSERT INTO docket.live_items AS l (collection, key, item, crawl_id, activated_at)
  SELECT v_collection, cc.key, cc.item, p_crawl, now() FROM docket.crawl_cache cc WHERE cc.crawl_id = p_crawl
  ON CONFLICT (collection, key) DO UPDATE
     SET item = excluded.item, crawl_id = excluded.crawl_id, activated_at = excluded.activated_at;
  PERFORM docket.crawl_done(p_crawl, p_job);
  RETURN true;
END $$;

-- Host politeness. Acquire: take the host's lease (if free, expired, already ours, or held by a
-- worker that lost its own lease) and return the seconds to wait before the request may start;
-- NULL when another live crawl holds the host.
CREATE FUNCTION docket.crawl_host_acquire(p_host text, p_holder text, p_worker uuid, p_lease_s float8) RETURNS float8
LANGUAGE sql AS $$
  INSERT INTO docket.crawl_hosts AS h (host, holder, worker, busy_until)
  VALUES (p_host, p_holder, p_worker, now() + make_interval(secs => p_lease_s))
  ON CONFLICT (host) DO UPDATE
     SET holder = excluded.holder, worker = excluded.worker,
         busy_until = greatest(h.not_before, now()) + make_interval(secs => p_lease_s)
   WHERE h.holder IS NULL OR h.holder = excluded.holder OR h.busy_until < now()
      OR NOT EXISTS (SELECT 1 FROM docket.workers w
                      WHERE w.id = h.worker AND w.dead_at IS NULL AND w.heartbeat_at >= now() - w.lease)
  RETURNING greatest(0, extract(epoch FROM h.not_before - now()))::float8
$$;

-- Release: the next request to the host may start no sooner than p_gap_s from now.
CREATE FUNCTION docket.crawl_host_release(p_host text, p_holder text, p_gap_s float8) RETURNS void
LANGUAGE sql AS $$
  UPDATE docket.crawl_hosts
     SET holder = NULL, worker = NULL, busy_until = NULL,
         not_before = greatest(not_before, now() + make_interval(secs => p_gap_s))
   WHERE host = p_host AND holder = p_holder
$$;

-- Ops view: crawls with their job's state, newest first.
CREATE VIEW docket.crawl_progress AS
  SELECT c.id, c.collection, c.kind, c.status, c.pages, c.items, c.last_error, c.started_at, c.updated_at,
         c.finished_at, c.job_id, j.state AS job_state, j.attempt
    FROM docket.crawls c LEFT JOIN docket.jobs j ON j.id = c.job_id
   ORDER BY c.id DESC;

-- Plan pinning -------------------------------------------------------------------------------
-- PL/pgSQL caches a generic plan per statement. One made while docket.jobs was empty (a fresh
-- install, a worker started before the backlog arrived) would keep sequentially scanning and
-- sorting the whole table long after it held a million rows. Every statement in these functions
-- is meant to be an index scan, so the planner is not offered the alternatives: the cached plan
-- is then the intended one whatever the statistics said when it was made.
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'docket.enqueue_job(text, jsonb, text, int, timestamptz, int, text)'::regprocedure,
    'docket.enqueue_many(jsonb)'::regprocedure,
    'docket.enqueue_many_jobs(jsonb)'::regprocedure,
    'docket.claim_from(uuid, text[], text[], int)'::regprocedure,
    'docket.claim(uuid, text[], text[], int)'::regprocedure,
    'docket.finish_and_claim(uuid, bigint[], int[], text[], float8[], jsonb[], text[], int[], text[], text[], int)'::regprocedure,
    'docket.cancel(bigint)'::regprocedure,
    'docket.retry(bigint)'::regprocedure,
    'docket.rescue(int)'::regprocedure,
    'docket.promote(int)'::regprocedure,
    'docket.prune(interval, interval, int)'::regprocedure,
    'docket.crawl_sweep()'::regprocedure,
    'docket.crawl_start(bigint, uuid, int, text, text, text)'::regprocedure,
    'docket.crawl_page(bigint, bigint, uuid, int, jsonb, text, text)'::regprocedure,
    'docket.crawl_error(bigint, bigint, uuid, int, text, boolean)'::regprocedure,
    'docket.crawl_finalizing(bigint, bigint, uuid, int)'::regprocedure,
    'docket.crawl_done(bigint, bigint)'::regprocedure,
    'docket.crawl_activate(bigint, bigint, uuid, int)'::regprocedure]
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET enable_seqscan = off', f);
    EXECUTE format('ALTER FUNCTION %s SET enable_bitmapscan = off', f);
  END LOOP;
  -- The claim runs on every wake-up of every worker: plan its statements once (the generic
  -- plans are the index plans above) instead of re-planning them on each call.
  ALTER FUNCTION docket.claim_from(uuid, text[], text[], int) SET plan_cache_mode = force_generic_plan;
  ALTER FUNCTION docket.claim(uuid, text[], text[], int) SET plan_cache_mode = force_generic_plan;
  ALTER FUNCTION docket.finish_and_claim(uuid, bigint[], int[], text[], float8[], jsonb[], text[], int[], text[],
                                         text[], int)
    SET plan_cache_mode = force_generic_plan;
END $$;
