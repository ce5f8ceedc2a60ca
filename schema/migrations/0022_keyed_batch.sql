-- 0022_keyed_batch: less work per limited claim (keyed limits, rates; issue 14). Measured as the
-- CPU time of the backend (pgbench loops of one claim, rolled back; perf on the backends):
--
-- - rate_wait, called by every claim that comes back short (an idle poll, a partly filled batch,
--   a rate-limited wait), cost ~1.9 ms of CPU per call though no kind had a rate: a SQL function
--   with SET search_path (apply_security) cannot be inlined, so every call parsed and planned its
--   body again. It is PL/pgSQL now (its plans are kept for the session, ~0.02 ms a call) and
--   returns at once when none of the kinds has a rate.
-- - The keyed claim: one statement per pass and the round-robin cursor out of docket.kinds (no
--   write of the kind's row per claim). Its CPU did not change measurably (a 100-job keyed claim
--   over 100k jobs / 1,000 keys: 2.8-3.5 ms with 0018's function and with this one, interleaved;
--   the open claim of the same batch 1.2-1.4 ms). What it spends is the loose scan and the
--   UPDATE: each key's probe of jobs_partition_idx reads the rest of a leaf page (PostgreSQL 15
--   reads a page's matching entries at once), ~40% of the claim's CPU under perf. Keys compared
--   bytewise (COLLATE "C") showed no difference beyond the noise either, so they keep the
--   database's collation.
-- - The keyed-insert trigger computes each keyed kind's path once per statement, not per row.

-- rate_wait as in 0018: when a claim comes back short, the seconds until the first empty bucket,
-- of a kind or of one of its keys, holds a token again. VOLATILE: called after docket.claim in
-- the same statement, each of its statements sees that claim's tokens.
CREATE OR REPLACE FUNCTION docket.rate_wait(p_kinds text[]) RETURNS float8
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM docket.kinds k
                  WHERE k.kind = ANY (p_kinds) AND (k.rate_limit IS NOT NULL OR k.rate_per_key_limit IS NOT NULL)) THEN
    RETURN NULL;
  END IF;
  RETURN (
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
    ) w);
END $$;

-- 0018's fill of inserted keyed jobs' keys, with each keyed kind's path computed once per
-- statement: the planner flattened the subquery of paths into the UPDATE, so partition_path (a
-- PL/pgSQL check) ran once per inserted row (20,000 keyed jobs in one INSERT: 1.7-2.1 s before,
-- 0.70-0.83 s now, 0.35-0.5 s without a partition). OFFSET 0 keeps the subquery whole.
CREATE OR REPLACE FUNCTION docket.jobs_fill_partition_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM docket.kinds k WHERE k.partition IS NOT NULL) THEN
    -- By id = ANY(array): the rows by primary key, never a join that walks the table.
    UPDATE docket.jobs j SET partition_key = docket.partition_key_of(p.path, j.args)
      FROM (SELECT k.kind, docket.partition_path(k.partition) AS path FROM docket.kinds k
             WHERE k.partition IS NOT NULL AND k.kind IN (SELECT n.kind FROM new_key_rows n) OFFSET 0) p
     WHERE p.kind = j.kind
       AND j.id = ANY (ARRAY(SELECT n.id FROM new_key_rows n
                              WHERE n.partition_key IS NULL AND n.kind IN (SELECT k.kind FROM docket.kinds k WHERE k.partition IS NOT NULL)));
  END IF;
  RETURN NULL;
END $$;

-- Each keyed kind's round-robin cursor (the last key a claim served), moved out of docket.kinds:
-- every claim wrote a new version of that wide row (its ~20 CHECK constraints prepared and
-- evaluated, WAL, a dead version per claim). One interleaved comparison showed ~0.4 ms less CPU
-- per 100-job claim without it, a second nothing beyond the noise.
-- Unlogged and without constraints: a cursor lost in a crash only restarts the round-robin at the
-- first key, and a stale key (a partition path changed since) is as good a starting point as any.
-- docket.kinds.partition_cursor (0017) is no longer read or written by the claim.
CREATE UNLOGGED TABLE docket.kind_cursors (
  kind text PRIMARY KEY,  -- a keyed kind (no foreign key: a row of a removed kind is harmless)
  key  text               -- the last key served (NULL: start at the first key)
) WITH (fillfactor = 50);

-- The keyed claim of 0018, each pass one statement whose rows go straight to the caller (RETURN
-- QUERY): no PL/pgSQL step per claimed job. The same statement pays each served key's token and
-- moves the kind's round-robin cursor to the last key served (the kind's row lock, held by
-- docket.claim, keeps other claimers of the kind off it),
-- so a pass that fills the claim, the usual case, is the whole claim. Everything else is as in
-- 0018: up to p_limit jobs from p_queues, round-robin over the keys from the kind's cursor, each
-- key within its max_running_per_key and its bucket; the caller holds the kind's row lock and each
-- pass is a later statement than the lock, so it sees every running job and no two claimers can
-- both see a key's free slot. A pass takes at most one job per key; passes continue after the last
-- key served, wrapping once to the first key, until the limit is met or a pass from the first key
-- finds nothing. Priority orders the jobs of one key, not keys against each other.
CREATE OR REPLACE FUNCTION docket.claim_keyed(p_worker uuid, p_queues text[], k docket.kinds, p_limit int)
RETURNS TABLE (id bigint, kind text, queue text, args jsonb, attempt int, max_retries int,
               priority smallint, run_at timestamptz, inserted_at timestamptz, unique_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_left int := p_limit;
  v_from text;  -- where this pass starts (NULL: the first key)
  v_stored text;  -- the cursor as docket.kind_cursors holds it now
  v_after text;
  v_after_priority int;
  v_got int;
BEGIN
  SELECT c.key INTO v_from FROM docket.kind_cursors c WHERE c.kind = k.kind;
  IF NOT FOUND THEN
    INSERT INTO docket.kind_cursors (kind, key) VALUES (k.kind, NULL) ON CONFLICT (kind) DO NOTHING;
  END IF;
  v_stored := v_from;
  LOOP
    EXIT WHEN v_left <= 0;
    -- From the first key: after ('', -1), every entry; else after (v_from, 1000), every entry of
    -- v_from (priorities are 0 to 1000).
    v_after := coalesce(v_from, '');
    v_after_priority := CASE WHEN v_from IS NULL THEN -1 ELSE 1000 END;
    RETURN QUERY
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
          LEFT JOIN docket.kind_keys kk ON k.rate_per_key_limit IS NOT NULL AND kk.kind = k.kind AND kk.key = ks.key
         WHERE (k.max_running_per_key IS NULL
                OR (SELECT count(*) FROM (SELECT 1 FROM docket.jobs r
                                           WHERE r.state = 'running' AND r.partition_key IS NOT NULL
                                             AND r.kind = k.kind AND r.partition_key = ks.key
                                           LIMIT k.max_running_per_key) x) < k.max_running_per_key)
           AND (k.rate_per_key_limit IS NULL
                OR docket.bucket_tokens(k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst,
                                        kk.rate_tokens, kk.rate_at, now()) >= 1)
         LIMIT v_left
      ),
      -- (The kind's row lock keeps other claimers of the kind away; state is checked again in
      -- case a cancel took a job meanwhile.)
      claimed AS (
        UPDATE docket.jobs j
           SET state = 'running', attempt = j.attempt + 1, started_at = now(), finished_at = NULL, worker = p_worker
         WHERE j.id = ANY (ARRAY(SELECT o.id FROM open_keys o)) AND j.state = 'available'
        RETURNING j.id, j.kind, j.queue, j.args, j.attempt, coalesce(j.max_retries, k.max_retries, 20) AS max_retries,
                  j.priority, j.run_at, j.inserted_at, j.unique_key, j.partition_key AS key
      ),
      -- One job per key per pass: each key served pays one token (keys are distinct in a pass).
      paid AS (
        INSERT INTO docket.kind_keys AS kk (kind, key, rate_tokens, rate_at)
        SELECT k.kind, c.key,
               docket.bucket_tokens(k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst, NULL, NULL, now()) - 1,
               now()
          FROM claimed c WHERE k.rate_per_key_limit IS NOT NULL
        ON CONFLICT (kind, key) DO UPDATE
           SET rate_tokens = docket.bucket_tokens(k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst,
                                                  kk.rate_tokens, kk.rate_at, now()) - 1,
               rate_at = greatest(now(), kk.rate_at)
      ),
      moved AS (
        UPDATE docket.kind_cursors d SET key = (SELECT max(c.key) FROM claimed c)
         WHERE d.kind = k.kind AND EXISTS (SELECT 1 FROM claimed)
      )
      SELECT c.id, c.kind, c.queue, c.args, c.attempt, c.max_retries, c.priority, c.run_at, c.inserted_at, c.unique_key
        FROM claimed c;
    GET DIAGNOSTICS v_got = ROW_COUNT;
    v_left := v_left - v_got;
    IF v_got > 0 THEN
      EXIT WHEN v_left <= 0;
      SELECT d.key INTO v_from FROM docket.kind_cursors d WHERE d.kind = k.kind;  -- the pass's last key
      v_stored := v_from;
    ELSIF v_from IS NULL THEN
      EXIT;  -- a pass from the first key found no open key
    ELSE
      v_from := NULL;  -- past the last key: wrap to the first
    END IF;
  END LOOP;

  IF v_from IS NULL AND v_got = 0 AND v_stored IS NOT NULL THEN
    UPDATE docket.kind_cursors d SET key = NULL WHERE d.kind = k.kind;  -- nothing open: start over
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

SELECT docket.apply_security();
