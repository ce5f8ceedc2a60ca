-- 0018_keyed_fast: the keyed claim (0017) at the speed of the open claim. 0017 planned a dynamic
-- statement per pass (about 0.8 ms), counted every running job of the kind per pass by its key
-- expression and built one expression index per kind at run time. Now a job's key is stored:
--
-- - docket.jobs.partition_key: the key of a job of a keyed kind (NULL for other kinds), filled once
--   when the job is inserted (a statement trigger, whatever the insert path: enqueue, enqueue_many,
--   copies, schedules) and rewritten for the kind's live jobs when its partition path changes.
-- - ONE static index of every keyed kind's available jobs by (kind, queue, key, priority, run_at,
--   id) and one of their running jobs by (kind, key): no CREATE INDEX at run time, and the claim is
--   static SQL (planned once per session). The queue leads the key, so a claim never walks other
--   queues' backlog.
--
-- The key is as in 0017: `left(coalesce(args #>> path, ''), 200)`; a job whose args lack the path
-- falls into the default key, the empty string.

ALTER TABLE docket.jobs ADD COLUMN partition_key text;
COMMENT ON COLUMN docket.jobs.partition_key IS
  'The job''s key for its kind''s keyed limits (docket.kinds.partition); NULL when the kind has no partition';

-- The key of args under a partition path's segments (docket.partition_path; NULL: no key).
-- (Each parameter once: the planner inlines it.)
CREATE FUNCTION docket.partition_key_of(p_path text[], p_args jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT left(coalesce(p_args #>> p_path, ''), 200)
$$;

-- Inserted jobs of keyed kinds get their key (unless the insert gave one). A statement trigger:
-- an insert of jobs of kinds without a partition costs one look at docket.kinds per statement,
-- not a call per row (a row trigger cost every enqueue about 30%); a job of a keyed kind is
-- written twice at enqueue (the insert and this update: its enqueue costs several times more).
CREATE FUNCTION docket.jobs_fill_partition_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM docket.kinds k WHERE k.partition IS NOT NULL) THEN
    -- By id = ANY(array): the rows by primary key, never a join that walks the table.
    UPDATE docket.jobs j SET partition_key = docket.partition_key_of(p.path, j.args)
      FROM (SELECT k.kind, docket.partition_path(k.partition) AS path FROM docket.kinds k WHERE k.partition IS NOT NULL) p
     WHERE p.kind = j.kind
       AND j.id = ANY (ARRAY(SELECT n.id FROM new_key_rows n
                              WHERE n.partition_key IS NULL AND n.kind IN (SELECT k.kind FROM docket.kinds k WHERE k.partition IS NOT NULL)));
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER jobs_fill_partition_key AFTER INSERT ON docket.jobs
  REFERENCING NEW TABLE AS new_key_rows FOR EACH STATEMENT EXECUTE FUNCTION docket.jobs_fill_partition_key();

-- 0017's per-kind expression indexes give way to the two static ones.
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT i.indexname FROM pg_indexes i WHERE i.schemaname = 'docket' AND i.indexname LIKE 'jobs_partition_%' LOOP
    EXECUTE format('DROP INDEX docket.%I', r.indexname);
  END LOOP;
END $$;

-- Existing live jobs of keyed kinds get their key (one UPDATE at upgrade, about 10 s per million
-- such jobs; finished jobs keep none: nothing reads it).
UPDATE docket.jobs j SET partition_key = docket.partition_key_of(p.path, j.args)
  FROM (SELECT k.kind, docket.partition_path(k.partition) AS path FROM docket.kinds k WHERE k.partition IS NOT NULL) p
 WHERE p.kind = j.kind AND j.state NOT IN ('completed', 'failed', 'cancelled');

CREATE INDEX jobs_partition_idx ON docket.jobs (kind, queue, partition_key, priority, run_at, id)
  WHERE state = 'available' AND partition_key IS NOT NULL;
CREATE INDEX jobs_partition_running_idx ON docket.jobs (kind, partition_key)
  WHERE state = 'running' AND partition_key IS NOT NULL;

-- 0017's helpers for the dynamic statements, now unused.
DROP FUNCTION docket.partition_index(text, text);
DROP FUNCTION docket.partition_key_sql(text, text);

-- Who set a kind's keyed limits, as limit_source for max_running (0007): a worker's TOML seeds them
-- ('config') and an operator's setting ('operator': SQL, HTTP, CLI) holds over every later worker
-- start until docket.reset_limit. config_partition keeps the TOML's settings for that reset.
ALTER TABLE docket.kinds
  ADD COLUMN partition_source text CONSTRAINT kinds_partition_source_check CHECK (partition_source IN ('config', 'operator')),
  ADD COLUMN config_partition jsonb;

-- Write a kind's partition and per-key limits, all at once (NULL partition: no keyed limits, the
-- kind claims as before), recording who set them. A changed partition path rewrites the key of the
-- kind's live jobs in one UPDATE (about 10 s per million of them) under a SHARE lock on
-- docket.jobs: it waits for the transactions writing jobs to end (an enqueue that did not see the
-- new path is then rewritten too) and holds enqueues and claims until it commits; behind a long
-- transaction it gives up after 5 s (SQL 55P03, a Timeout). A changed rate_per_key starts every
-- key from a full bucket.
CREATE FUNCTION docket.write_partition(kind text, partition text, max_running_per_key int, rate_per_key text,
                                       burst_per_key int, source text) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  r record;
  v_old record;
  v_path text[];
BEGIN
  PERFORM docket.check_name('kind', kind);
  r := docket.check_partition(partition, max_running_per_key, rate_per_key, burst_per_key);
  -- The kind's row first, then the table: the order claimers take them in (no deadlock with a
  -- claim of this kind).
  SELECT k.partition, k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst INTO v_old
    FROM docket.kinds k WHERE k.kind = write_partition.kind FOR UPDATE;
  IF partition IS NOT NULL AND partition IS DISTINCT FROM v_old.partition THEN
    PERFORM set_config('lock_timeout', '5s', true);
    LOCK TABLE docket.jobs IN SHARE MODE;
    v_path := docket.partition_path(partition);
    UPDATE docket.jobs j SET partition_key = docket.partition_key_of(v_path, j.args)
     WHERE j.kind = write_partition.kind AND j.state NOT IN ('completed', 'failed', 'cancelled')
       AND j.partition_key IS DISTINCT FROM docket.partition_key_of(v_path, j.args);
  END IF;
  INSERT INTO docket.kinds AS k (kind, partition, max_running_per_key, rate_per_key_limit, rate_per_key_period,
                                 rate_per_key_burst, partition_source)
  VALUES (write_partition.kind, partition, max_running_per_key, r.n, r.period, burst_per_key, source)
  ON CONFLICT ON CONSTRAINT kinds_pkey
  DO UPDATE SET partition = excluded.partition, max_running_per_key = excluded.max_running_per_key,
                rate_per_key_limit = excluded.rate_per_key_limit, rate_per_key_period = excluded.rate_per_key_period,
                rate_per_key_burst = excluded.rate_per_key_burst, partition_source = excluded.partition_source,
                partition_cursor = CASE WHEN k.partition IS NOT DISTINCT FROM excluded.partition THEN k.partition_cursor END,
                updated_at = now();
  IF v_old.partition IS DISTINCT FROM partition
     OR (v_old.rate_per_key_limit, v_old.rate_per_key_period, v_old.rate_per_key_burst)
        IS DISTINCT FROM (r.n, r.period, burst_per_key) THEN
    DELETE FROM docket.kind_keys kk WHERE kk.kind = write_partition.kind;
  END IF;
  PERFORM pg_notify('docket_control', 'limit');
END $$;

-- An operator's keyed limits (SQL, HTTP, CLI), or their removal (NULL partition): either holds
-- over workers' TOML until reset_limit.
CREATE OR REPLACE FUNCTION docket.set_partition(kind text, partition text, max_running_per_key int DEFAULT NULL,
                                                rate_per_key text DEFAULT NULL, burst_per_key int DEFAULT NULL) RETURNS void
LANGUAGE sql AS $$
  SELECT docket.write_partition(kind, partition, max_running_per_key, rate_per_key, burst_per_key, 'operator')
$$;

-- A worker's TOML keyed limits at its start: stored as config_partition, and applied unless an
-- operator set the kind's keyed limits (then they are kept). Returns whether they were applied,
-- the source of the settings in force and their partition.
CREATE FUNCTION docket.seed_partition(kind text, partition text, max_running_per_key int, rate_per_key text,
                                      burst_per_key int, OUT applied boolean, OUT source text, OUT partition_now text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  PERFORM docket.check_name('kind', kind);
  PERFORM docket.check_partition(partition, max_running_per_key, rate_per_key, burst_per_key);
  INSERT INTO docket.kinds AS k (kind, config_partition)
  VALUES (seed_partition.kind, jsonb_build_object('partition', partition, 'max_running_per_key', max_running_per_key,
                                                  'rate_per_key', rate_per_key, 'burst_per_key', burst_per_key))
  ON CONFLICT ON CONSTRAINT kinds_pkey DO UPDATE SET config_partition = excluded.config_partition
  RETURNING k.partition_source = 'operator', k.partition INTO applied, partition_now;
  IF applied THEN  -- the operator's settings (or their removal) hold
    applied := false;
    source := 'operator';
    RETURN;
  END IF;
  PERFORM docket.write_partition(kind, partition, max_running_per_key, rate_per_key, burst_per_key,
                                 CASE WHEN partition IS NOT NULL THEN 'config' END);
  applied := true;
  source := CASE WHEN partition IS NOT NULL THEN 'config' END;
  partition_now := partition;
END $$;

-- reset_limit as in 0007 (an operator's quota goes back to the TOML's), and an operator's keyed
-- limits go back to the workers' TOML ones (config_partition) or to none.
CREATE OR REPLACE FUNCTION docket.reset_limit(kind text) RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_found boolean;
  c jsonb;
BEGIN
  PERFORM docket.check_name('kind', kind);
  UPDATE docket.kinds k
     SET max_running = k.config_max_running,
         limit_source = CASE WHEN k.config_max_running IS NOT NULL THEN 'config' END, updated_at = now()
   WHERE k.kind = reset_limit.kind AND k.limit_source = 'operator';
  v_found := FOUND;
  SELECT k.config_partition INTO c FROM docket.kinds k WHERE k.kind = reset_limit.kind AND k.partition_source = 'operator';
  IF FOUND THEN
    v_found := true;
    PERFORM docket.write_partition(kind, c ->> 'partition', (c ->> 'max_running_per_key')::int, c ->> 'rate_per_key',
                                   (c ->> 'burst_per_key')::int, CASE WHEN c ->> 'partition' IS NOT NULL THEN 'config' END);
  END IF;
  PERFORM pg_notify('docket_control', 'limit');
  RETURN v_found;
END $$;

-- The keyed claim of one kind: up to p_limit jobs from p_queues, round-robin over the keys from the
-- kind's cursor, each key within its max_running_per_key and its bucket. The caller holds the
-- kind's row lock (docket.claim), and each pass is a later statement than the lock: it sees every
-- running job, so no two claimers can both see a key's free slot. Each pass is one static
-- statement: a loose scan of jobs_partition_idx from the cursor (one probe per queue per key gives
-- the key and its head job; lazy: it stops once it has found p_limit open keys) and a probe of
-- each key's running jobs (at most max_running_per_key rows) and its bucket. Passes continue
-- after the last key served, wrapping once to the first key, until the limit is met or a pass
-- from the first key finds nothing. Priority orders the jobs of one key, not keys against each other.
CREATE OR REPLACE FUNCTION docket.claim_keyed(p_worker uuid, p_queues text[], k docket.kinds, p_limit int)
RETURNS TABLE (id bigint, kind text, queue text, args jsonb, attempt int, max_retries int,
               priority smallint, run_at timestamptz, inserted_at timestamptz, unique_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_left int := p_limit;
  v_from text := k.partition_cursor;
  v_after text;
  v_after_priority int;
  v_got int;
  v_last text;
  v_keys text[];
  rec record;
BEGIN
  LOOP
    EXIT WHEN v_left <= 0;
    v_got := 0;
    v_keys := '{}';
    v_last := NULL;
    -- From the first key: after ('', -1), every entry; else after (v_from, 1000), every entry of
    -- v_from (priorities are 0 to 1000).
    v_after := coalesce(v_from, '');
    v_after_priority := CASE WHEN v_from IS NULL THEN -1 ELSE 1000 END;
    FOR rec IN
      -- Each step is one probe per queue that yields the next key and its head job at once: the
      -- index orders a key's entries by (priority, run_at, id).
      WITH RECURSIVE ks(key, id) AS (
        SELECT n.key, n.id FROM (
          SELECT h.key, h.id FROM unnest(p_queues) q(name)
          CROSS JOIN LATERAL (
            SELECT j.partition_key AS key, j.priority, j.run_at, j.id FROM docket.jobs j
             WHERE j.state = 'available' AND j.partition_key IS NOT NULL AND j.kind = k.kind AND j.queue = q.name
               AND (j.partition_key, j.priority) > (v_after, v_after_priority)
             ORDER BY j.partition_key, j.priority, j.run_at, j.id LIMIT 1) h
          ORDER BY h.key, h.priority, h.run_at, h.id LIMIT 1) n
        UNION ALL
        SELECT n.key, n.id FROM ks CROSS JOIN LATERAL (
          SELECT h.key, h.id FROM unnest(p_queues) q(name)
          CROSS JOIN LATERAL (
            SELECT j.partition_key AS key, j.priority, j.run_at, j.id FROM docket.jobs j
             WHERE j.state = 'available' AND j.partition_key IS NOT NULL AND j.kind = k.kind AND j.queue = q.name
               AND (j.partition_key, j.priority) > (ks.key, 1000)
             ORDER BY j.partition_key, j.priority, j.run_at, j.id LIMIT 1) h
          ORDER BY h.key, h.priority, h.run_at, h.id LIMIT 1) n
      ),
      open_keys AS (
        SELECT ks.id FROM ks
          LEFT JOIN docket.kind_keys kk ON kk.kind = k.kind AND kk.key = ks.key
         WHERE (k.max_running_per_key IS NULL
                OR (SELECT count(*) FROM (SELECT 1 FROM docket.jobs r
                                           WHERE r.state = 'running' AND r.partition_key IS NOT NULL
                                             AND r.kind = k.kind AND r.partition_key = ks.key
                                           LIMIT k.max_running_per_key) x) < k.max_running_per_key)
           AND (k.rate_per_key_limit IS NULL
                OR docket.bucket_tokens(k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst,
                                        kk.rate_tokens, kk.rate_at, now()) >= 1)
         LIMIT v_left
      )
      -- (The kind's row lock keeps other claimers of the kind away; state is checked again in
      -- case a cancel took a job meanwhile.)
      UPDATE docket.jobs j
         SET state = 'running', attempt = j.attempt + 1, started_at = now(), finished_at = NULL, worker = p_worker
       WHERE j.id = ANY (ARRAY(SELECT o.id FROM open_keys o)) AND j.state = 'available'
      RETURNING j.id, j.kind, j.queue, j.args, j.attempt, coalesce(j.max_retries, k.max_retries, 20) AS max_retries,
                j.priority, j.run_at, j.inserted_at, j.unique_key, j.partition_key AS key
    LOOP
      id := rec.id; kind := rec.kind; queue := rec.queue; args := rec.args; attempt := rec.attempt;
      max_retries := rec.max_retries; priority := rec.priority; run_at := rec.run_at;
      inserted_at := rec.inserted_at; unique_key := rec.unique_key;
      RETURN NEXT;
      v_got := v_got + 1;
      v_keys := v_keys || rec.key;
      IF v_last IS NULL OR rec.key > v_last THEN v_last := rec.key; END IF;
    END LOOP;
    IF v_got > 0 AND k.rate_per_key_limit IS NOT NULL THEN
      -- One job per key per pass: each key served pays one token.
      INSERT INTO docket.kind_keys AS kk (kind, key, rate_tokens, rate_at)
      SELECT k.kind, s.key,
             docket.bucket_tokens(k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst, NULL, NULL, now()) - 1,
             now()
        FROM unnest(v_keys) s(key)
      ON CONFLICT (kind, key) DO UPDATE
         SET rate_tokens = docket.bucket_tokens(k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst,
                                                kk.rate_tokens, kk.rate_at, now()) - 1,
             rate_at = greatest(now(), kk.rate_at);
    END IF;
    v_left := v_left - v_got;
    IF v_got > 0 THEN
      v_from := v_last;
    ELSIF v_from IS NULL THEN
      EXIT;  -- a pass from the first key found no open key
    ELSE
      v_from := NULL;  -- past the last key: wrap to the first
    END IF;
  END LOOP;

  IF v_from IS DISTINCT FROM k.partition_cursor THEN
    UPDATE docket.kinds d SET partition_cursor = v_from WHERE d.kind = k.kind;
  END IF;
  IF k.rate_per_key_limit IS NOT NULL THEN
    -- Buckets that are full again lose their rows (a bounded batch per claim): an empty bucket
    -- refills in capacity / limit periods, which is more than one period when the burst is
    -- larger than the limit; deleting a row sooner would hand the key a full burst early.
    DELETE FROM docket.kind_keys kk
     WHERE (kk.kind, kk.key) IN (
             SELECT o.kind, o.key FROM docket.kind_keys o
              WHERE o.kind = k.kind
                AND o.rate_at < now() - k.rate_per_key_period * greatest(1.0,
                      docket.rate_capacity(k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst)
                      / k.rate_per_key_limit)
              ORDER BY o.rate_at LIMIT 100);
  END IF;
END $$;

-- The queues that hold available jobs of a keyed kind (a loose scan of jobs_partition_idx: one
-- probe per queue), for the counts per key below.
CREATE FUNCTION docket.partition_queues(p_kind text) RETURNS TABLE (queue text)
LANGUAGE sql STABLE AS $$
  WITH RECURSIVE qs(queue) AS (
    SELECT (SELECT j.queue FROM docket.jobs j WHERE j.state = 'available' AND j.partition_key IS NOT NULL
               AND j.kind = p_kind ORDER BY j.queue LIMIT 1)
    UNION ALL
    SELECT (SELECT j.queue FROM docket.jobs j WHERE j.state = 'available' AND j.partition_key IS NOT NULL
               AND j.kind = p_kind AND j.queue > qs.queue ORDER BY j.queue LIMIT 1)
      FROM qs WHERE qs.queue IS NOT NULL
  )
  SELECT qs.queue FROM qs WHERE qs.queue IS NOT NULL
$$;

-- A keyed kind's keys now, as in 0017, from the stored keys: running jobs per key and the key's
-- bucket, the busiest p_top keys first, whether the key is at a limit and how many of its jobs
-- wait (counted up to 100000 per queue through jobs_partition_idx).
CREATE OR REPLACE FUNCTION docket.kind_hot_keys(p_kind text, p_top int)
RETURNS TABLE (key text, running bigint, rate_tokens float8, at_limit boolean, available bigint)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
  k docket.kinds;
BEGIN
  SELECT * INTO k FROM docket.kinds d WHERE d.kind = p_kind;
  IF k.partition IS NULL THEN RETURN; END IF;
  RETURN QUERY
    WITH r AS (SELECT j.partition_key AS key, count(*) AS running FROM docket.jobs j
                WHERE j.state = 'running' AND j.partition_key IS NOT NULL AND j.kind = p_kind GROUP BY 1),
    b AS (SELECT kk.key, docket.bucket_tokens(k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst,
                                              kk.rate_tokens, kk.rate_at, now()) AS tokens
            FROM docket.kind_keys kk WHERE kk.kind = p_kind),
    hot AS (
      SELECT coalesce(r.key, b.key) AS key, coalesce(r.running, 0) AS running, b.tokens
        FROM r FULL JOIN b ON b.key = r.key
       ORDER BY 2 DESC, 3 NULLS LAST, 1 LIMIT least(greatest(p_top, 0), 1000))
    SELECT h.key, h.running, h.tokens,
           coalesce(h.running >= k.max_running_per_key, false) OR coalesce(h.tokens < 1, false),
           (SELECT coalesce(sum(n.c), 0)::bigint FROM docket.partition_queues(p_kind) pq
             CROSS JOIN LATERAL (SELECT count(*) AS c FROM (
                    SELECT 1 FROM docket.jobs j WHERE j.state = 'available' AND j.partition_key IS NOT NULL
                       AND j.kind = p_kind AND j.queue = pq.queue AND j.partition_key = h.key LIMIT 100000) x) n)
      FROM hot h ORDER BY 2 DESC, 3 NULLS LAST, 1;
END $$;

-- A keyed kind's busiest key (its running count) and how many keys are at a limit now.
CREATE OR REPLACE FUNCTION docket.kind_key_stats(k docket.kinds, OUT max_key_running bigint, OUT keys_at_limit bigint)
LANGUAGE sql STABLE AS $$
  WITH r AS (SELECT j.partition_key AS key, count(*) AS running FROM docket.jobs j
              WHERE k.partition IS NOT NULL AND j.state = 'running' AND j.partition_key IS NOT NULL AND j.kind = k.kind
              GROUP BY 1),
  b AS (SELECT kk.key, docket.bucket_tokens(k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst,
                                            kk.rate_tokens, kk.rate_at, now()) AS tokens
          FROM docket.kind_keys kk WHERE k.partition IS NOT NULL AND kk.kind = k.kind)
  SELECT coalesce(max(r.running), 0),
         count(*) FILTER (WHERE coalesce(r.running >= k.max_running_per_key, false) OR coalesce(b.tokens < 1, false))
    FROM r FULL JOIN b ON b.key = r.key
$$;

-- rate_wait as in 0010, and per key: when a claim comes back short, the seconds until the first
-- empty bucket, of a kind or of one of its keys, holds a token again (the worker claims again
-- then, neither spinning nor waiting out its poll interval). Keys are read only from kinds with a
-- rate_per_key, through kind_keys' index by (kind, rate_at): a bucket below one token was paid
-- from less than one token's refill time ago (the claim takes a token only from a bucket holding
-- one), and the oldest of those refill first; at most 1,000 per kind. A wake-up for a key that no
-- longer waits costs one empty claim.
CREATE OR REPLACE FUNCTION docket.rate_wait(p_kinds text[]) RETURNS float8
LANGUAGE sql VOLATILE AS $$
  SELECT min(w.s) FROM (
    SELECT (1 - t.tokens) / (k.rate_limit / extract(epoch FROM k.rate_period)::float8) AS s
      FROM docket.kinds k CROSS JOIN LATERAL (SELECT docket.rate_tokens_at(k, now()) AS tokens) t
     WHERE k.kind = ANY (p_kinds) AND k.rate_limit IS NOT NULL AND t.tokens < 1
    UNION ALL
    SELECT (1 - kt.tokens) / (k.rate_per_key_limit / extract(epoch FROM k.rate_per_key_period)::float8)
      FROM docket.kinds k
      CROSS JOIN LATERAL (
        SELECT docket.bucket_tokens(k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst,
                                    kk.rate_tokens, kk.rate_at, now()) AS tokens
          FROM docket.kind_keys kk
         WHERE kk.kind = k.kind AND kk.rate_at > now() - k.rate_per_key_period / k.rate_per_key_limit
         ORDER BY kk.rate_at LIMIT 1000) kt
     WHERE k.kind = ANY (p_kinds) AND k.partition IS NOT NULL AND k.rate_per_key_limit IS NOT NULL AND kt.tokens < 1
  ) w
$$;

-- A worker seeds its TOML's keyed limits as it seeds its quota (kind_seed).
INSERT INTO docket.function_roles VALUES ('seed_partition', 'docket_worker'), ('seed_partition', 'docket_ops')
ON CONFLICT DO NOTHING;
INSERT INTO docket.internal_functions VALUES ('partition_queues'), ('partition_key_of'), ('jobs_fill_partition_key'),
  ('write_partition')
ON CONFLICT DO NOTHING;

SELECT docket.apply_security();
