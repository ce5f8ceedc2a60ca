-- 0017_keyed_limits: limits per key. A kind may name a partition, a JSON path into its jobs' args
-- (`args.tenant`, `args.source.host`), and then limit each key's running jobs
-- (max_running_per_key) and starts (rate_per_key, "N/PERIOD" as docket.set_rate), on top of the
-- kind's own max_running and rate.
--
-- How the claim finds work without head-of-line blocking: setting a partition builds a partial
-- index of the kind's available jobs by (key, priority, run_at, id). The keyed claim walks the
-- distinct keys of that index from a cursor stored on the kind (a loose index scan: one probe per
-- key), skips the keys at their limit (one probe each, and only keys with running jobs or an empty
-- bucket can be at a limit), and takes the head job of each open key. A tenant with 100,000 queued
-- jobs costs one probe, not 100,000 rows, and never stands in front of another tenant's job.
-- Fairness: the cursor moves past the last key served, so keys are served round-robin, one job per
-- key per turn: each backlogged key gets an equal share of the starts. Priority orders the jobs of
-- one key, not keys against each other.
--
-- Exactness: the keyed claim runs under the kind's row lock (as docket.claim's quota already
-- does) and counts the key's running jobs in a later statement, so no two claimers can both see a
-- free slot. The per-key buckets live in docket.kind_keys, written under the same lock.
--
-- The key is `left(coalesce(args #>> path, ''), 200)`: a job whose args lack the path (or hold
-- null there) falls into the default key, the empty string; a key is at most 200 characters (a
-- longer value shares its key with the values of the same first 200 characters).
-- Enqueue is untouched: nothing is computed for jobs of kinds without a partition.

ALTER TABLE docket.kinds
  ADD COLUMN partition text
    CONSTRAINT kinds_partition_check CHECK (partition IS NULL OR partition ~ '^args(\.[A-Za-z0-9_-]{1,64}){1,8}$'),
  ADD COLUMN max_running_per_key int
    CONSTRAINT kinds_max_running_per_key_check CHECK (max_running_per_key IS NULL OR max_running_per_key BETWEEN 0 AND 1000000),
  ADD COLUMN rate_per_key_limit int
    CONSTRAINT kinds_rate_per_key_limit_check CHECK (rate_per_key_limit IS NULL OR rate_per_key_limit BETWEEN 1 AND 1000000),
  ADD COLUMN rate_per_key_period interval
    CONSTRAINT kinds_rate_per_key_period_check
      CHECK (rate_per_key_period IS NULL OR rate_per_key_period BETWEEN interval '1 millisecond' AND interval '1 day'),
  ADD COLUMN rate_per_key_burst int
    CONSTRAINT kinds_rate_per_key_burst_check CHECK (rate_per_key_burst IS NULL OR rate_per_key_burst BETWEEN 1 AND 1000000),
  ADD COLUMN partition_cursor text,  -- the last key the keyed claim served: the next claim starts after it
  ADD CONSTRAINT kinds_partition_limits_check
    CHECK ((rate_per_key_limit IS NULL) = (rate_per_key_period IS NULL)
           AND (rate_per_key_burst IS NULL OR rate_per_key_limit IS NOT NULL)
           AND (partition IS NOT NULL OR (max_running_per_key IS NULL AND rate_per_key_limit IS NULL)));

COMMENT ON COLUMN docket.kinds.partition IS 'JSON path into args (args.tenant) whose value is the key of the per-key limits';

-- A key's token bucket (only keys whose bucket is not full have a row: a missing row is a full
-- bucket, and the claim deletes rows that have refilled).
CREATE TABLE docket.kind_keys (
  kind        text NOT NULL REFERENCES docket.kinds (kind) ON DELETE CASCADE,
  key         text NOT NULL,
  rate_tokens float8 NOT NULL,
  rate_at     timestamptz NOT NULL,
  PRIMARY KEY (kind, key)
);
-- The claim's clean-up of refilled buckets walks a kind's oldest rows.
CREATE INDEX kind_keys_at_idx ON docket.kind_keys (kind, rate_at);

-- The path's segments ('args.a.b' -> {a,b}). Raises 22023 naming the field for anything else:
-- `args.` then 1 to 8 names of letters, digits, _ and -, each at most 64 characters.
CREATE FUNCTION docket.partition_path(p_partition text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_partition IS NULL THEN RETURN NULL; END IF;
  IF length(p_partition) > 600 OR p_partition !~ '^args(\.[A-Za-z0-9_-]{1,64}){1,8}$' THEN
    RAISE EXCEPTION 'partition must be a path into args such as args.tenant or args.source.host (1 to 8 names of letters, digits, _ or -), got "%"',
      left(p_partition, 100) USING ERRCODE = '22023';
  END IF;
  RETURN string_to_array(substr(p_partition, 6), '.');
END $$;

-- The key expression of a partition, as SQL over the args column `p_args` (`args` in the index,
-- `j.args` in the claim: the planner matches them, both are the column).
CREATE FUNCTION docket.partition_key_sql(p_partition text, p_args text DEFAULT 'j.args') RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT format('left(coalesce(%s #>> %L::text[], %L), 200)', p_args, docket.partition_path(p_partition)::text, '')
$$;

-- The name of the index of a kind's available jobs by key for one partition path.
CREATE FUNCTION docket.partition_index(p_kind text, p_partition text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT 'jobs_partition_' || left(md5(p_kind || E'\n' || p_partition), 24)
$$;

-- The tokens a bucket of p_limit per p_period (burst p_burst) holds at p_now, given what it held
-- at p_at (NULL: full). As docket.rate_tokens_at, for buckets outside docket.kinds.
CREATE FUNCTION docket.bucket_tokens(p_limit int, p_period interval, p_burst int, p_tokens float8, p_at timestamptz,
                                     p_now timestamptz) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN p_limit IS NULL THEN NULL
              WHEN p_tokens IS NULL OR p_at IS NULL THEN docket.rate_capacity(p_limit, p_period, p_burst)
              ELSE least(docket.rate_capacity(p_limit, p_period, p_burst),
                         p_tokens + p_limit / extract(epoch FROM p_period)::float8
                                    * greatest(0, extract(epoch FROM p_now - p_at)::float8)) END
$$;

-- Checks keyed settings without writing anything (the HTTP and CLI adapters check before they
-- write any of a request's settings). Returns the parsed rate.
CREATE FUNCTION docket.check_partition(partition text, max_running_per_key int, rate_per_key text, burst_per_key int,
                                       OUT n int, OUT period interval)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  r record;
BEGIN
  PERFORM docket.partition_path(partition);
  IF max_running_per_key IS NOT NULL AND (max_running_per_key < 0 OR max_running_per_key > 1000000) THEN
    RAISE EXCEPTION 'max_running_per_key must be between 0 and 1000000 (or NULL for none), got %', max_running_per_key
      USING ERRCODE = '22023';
  END IF;
  BEGIN
    r := docket.parse_rate(rate_per_key);
  EXCEPTION WHEN invalid_parameter_value THEN
    RAISE EXCEPTION 'rate_per_key: %', SQLERRM USING ERRCODE = '22023';
  END;
  IF burst_per_key IS NOT NULL AND rate_per_key IS NULL THEN
    RAISE EXCEPTION 'burst_per_key needs a rate_per_key' USING ERRCODE = '22023';
  END IF;
  IF burst_per_key IS NOT NULL AND (burst_per_key < 1 OR burst_per_key > 1000000) THEN
    RAISE EXCEPTION 'burst_per_key must be between 1 and 1000000, got %', burst_per_key USING ERRCODE = '22023';
  END IF;
  IF partition IS NULL AND (max_running_per_key IS NOT NULL OR rate_per_key IS NOT NULL) THEN
    RAISE EXCEPTION 'max_running_per_key and rate_per_key need a partition (such as args.tenant)' USING ERRCODE = '22023';
  END IF;
  n := r.n;
  period := r.period;
END $$;

-- Set a kind's partition and per-key limits, all at once (NULL partition: no keyed limits, the
-- kind claims as before). A new partition path builds its index of the kind's available jobs
-- (CREATE INDEX: it blocks writes to docket.jobs for the build, about a second per million jobs);
-- the old path's index is dropped. A changed rate_per_key starts every key from a full bucket.
CREATE FUNCTION docket.set_partition(kind text, partition text, max_running_per_key int DEFAULT NULL,
                                     rate_per_key text DEFAULT NULL, burst_per_key int DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  r record;
  v_old text;
  v_old_rate record;
  v_index text;
BEGIN
  PERFORM docket.check_name('kind', kind);
  r := docket.check_partition(partition, max_running_per_key, rate_per_key, burst_per_key);
  -- Two callers setting one kind's partition would race to create the same index.
  PERFORM pg_advisory_xact_lock(hashtextextended('docket.partition ' || set_partition.kind, 0));
  SELECT k.partition, k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst INTO v_old_rate
    FROM docket.kinds k WHERE k.kind = set_partition.kind;
  v_old := v_old_rate.partition;
  IF (partition IS NOT NULL AND to_regclass('docket.' || docket.partition_index(set_partition.kind, partition)) IS NULL)
     OR (v_old IS NOT NULL AND v_old IS DISTINCT FROM partition) THEN
    -- The index DDL waits for every transaction that uses docket.jobs, and while it waits every
    -- enqueue and claim queues behind it: behind a long transaction, give up after 5 s instead
    -- (SQL 55P03, a Timeout: the API answers 503, a starting worker retries with backoff).
    PERFORM set_config('lock_timeout', '5s', true);
  END IF;
  IF partition IS NOT NULL THEN
    v_index := docket.partition_index(set_partition.kind, partition);
    IF to_regclass('docket.' || v_index) IS NULL THEN
      EXECUTE format('CREATE INDEX %I ON docket.jobs (%s, priority, run_at, id) WHERE state = %L AND kind = %L',
                     v_index, docket.partition_key_sql(partition, 'args'), 'available', set_partition.kind);
    END IF;
  END IF;
  IF v_old IS NOT NULL AND v_old IS DISTINCT FROM partition THEN
    EXECUTE format('DROP INDEX IF EXISTS docket.%I', docket.partition_index(set_partition.kind, v_old));
  END IF;
  INSERT INTO docket.kinds AS k (kind, partition, max_running_per_key, rate_per_key_limit, rate_per_key_period,
                                 rate_per_key_burst)
  VALUES (set_partition.kind, partition, max_running_per_key, r.n, r.period, burst_per_key)
  ON CONFLICT ON CONSTRAINT kinds_pkey
  DO UPDATE SET partition = excluded.partition, max_running_per_key = excluded.max_running_per_key,
                rate_per_key_limit = excluded.rate_per_key_limit, rate_per_key_period = excluded.rate_per_key_period,
                rate_per_key_burst = excluded.rate_per_key_burst,
                partition_cursor = CASE WHEN k.partition IS NOT DISTINCT FROM excluded.partition THEN k.partition_cursor END,
                updated_at = now();
  IF v_old IS DISTINCT FROM partition
     OR (v_old_rate.rate_per_key_limit, v_old_rate.rate_per_key_period, v_old_rate.rate_per_key_burst)
        IS DISTINCT FROM (r.n, r.period, burst_per_key) THEN
    DELETE FROM docket.kind_keys kk WHERE kk.kind = set_partition.kind;
  END IF;
  PERFORM pg_notify('docket_control', 'limit');
END $$;

-- The keyed claim of one kind: up to p_limit jobs from p_queues, round-robin over the keys from the
-- kind's cursor, each key within its max_running_per_key and its bucket. The caller holds the
-- kind's row lock (docket.claim). Each pass is one statement: a loose scan of the key index from
-- the cursor (lazy: it stops once it has found p_limit open keys), then the head job of each.
-- Passes continue after the last key served, wrapping once to the first key, until the limit is
-- met or a pass from the first key finds nothing.
CREATE FUNCTION docket.claim_keyed(p_worker uuid, p_queues text[], k docket.kinds, p_limit int)
RETURNS TABLE (id bigint, kind text, queue text, args jsonb, attempt int, max_retries int,
               priority smallint, run_at timestamptz, inserted_at timestamptz, unique_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_key_sql constant text := docket.partition_key_sql(k.partition);
  v_left int := p_limit;
  v_from text := k.partition_cursor;
  v_tmpl text;
  v_pass_sql text;   -- a pass from the first key (>=)
  v_next_sql text;   -- a pass after the last key served (>)
  v_got int;
  v_last text;
  v_keys text[];
  rec record;
BEGIN
  -- $1 the key to start after (or at, from the first key), $2 max per key, $3 limit, $4 queues,
  -- $5 worker. A key is open below its max and with a whole token. The running jobs per key are
  -- counted in the statement: it sees the jobs earlier passes of this claim took.
  v_tmpl := $q$
    WITH RECURSIVE running(m) AS (
      SELECT coalesce(jsonb_object_agg(x.key, x.n), '{}') FROM (
        SELECT %1$s AS key, count(*) AS n FROM docket.jobs j
         WHERE $2::int IS NOT NULL AND j.state = 'running' AND j.kind = %2$L GROUP BY 1) x
    ),
    ks(key) AS (
      (SELECT %1$s FROM docket.jobs j WHERE j.state = 'available' AND j.kind = %2$L AND j.queue = ANY ($4)
          AND %1$s %3$s $1 ORDER BY 1 LIMIT 1)
      UNION ALL
      SELECT (SELECT %1$s FROM docket.jobs j WHERE j.state = 'available' AND j.kind = %2$L AND j.queue = ANY ($4)
                 AND %1$s > ks.key ORDER BY 1 LIMIT 1)
        FROM ks WHERE ks.key IS NOT NULL
    ),
    open_keys AS (
      SELECT ks.key FROM ks
        LEFT JOIN docket.kind_keys kk ON kk.kind = %2$L AND kk.key = ks.key
       WHERE ks.key IS NOT NULL
         AND ($2::int IS NULL OR coalesce((SELECT r.m FROM running r) ->> ks.key, '0')::int < $2::int)
         AND (%4$L::int IS NULL
              OR docket.bucket_tokens(%4$L::int, %5$L::interval, %6$L::int, kk.rate_tokens, kk.rate_at, now()) >= 1)
       LIMIT $3
    ),
    c AS (
      SELECT x.id FROM open_keys o
      CROSS JOIN LATERAL (
        SELECT j.id FROM docket.jobs j
         WHERE j.state = 'available' AND j.kind = %2$L AND j.queue = ANY ($4) AND %1$s = o.key
         ORDER BY j.priority, j.run_at, j.id
         LIMIT 1
         FOR UPDATE SKIP LOCKED) x
    )
    UPDATE docket.jobs j
       SET state = 'running', attempt = j.attempt + 1, started_at = now(), finished_at = NULL, worker = $5
     WHERE j.id = ANY (ARRAY(SELECT c.id FROM c))
    RETURNING j.id, j.kind, j.queue, j.args, j.attempt,
              coalesce(j.max_retries, %7$L::int, 20) AS max_retries,
              j.priority, j.run_at, j.inserted_at, j.unique_key, %1$s AS key
  $q$;
  v_pass_sql := format(v_tmpl, v_key_sql, k.kind, '>=', k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst, k.max_retries);
  v_next_sql := format(v_tmpl, v_key_sql, k.kind, '>', k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst, k.max_retries);
  LOOP
    EXIT WHEN v_left <= 0;
    v_got := 0;
    v_keys := '{}';
    v_last := NULL;
    FOR rec IN EXECUTE CASE WHEN v_from IS NULL THEN v_pass_sql ELSE v_next_sql END
      USING coalesce(v_from, ''), k.max_running_per_key, v_left, p_queues, p_worker
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

-- docket.claim as in 0010, and a kind with a partition claims through docket.claim_keyed (after
-- the kind's own max_running and rate have capped its slots). Such a kind is a limited kind: its
-- row is locked in kind order like the others'.
CREATE OR REPLACE FUNCTION docket.claim(p_worker uuid, p_queues text[], p_kinds text[], p_limit int)
RETURNS TABLE (id bigint, kind text, queue text, args jsonb, attempt int, max_retries int,
               priority smallint, run_at timestamptz, inserted_at timestamptz, unique_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_queues text[];
  v_open text[];      -- kinds without a limit
  v_limited text[];   -- kinds with a quota, a rate or a partition this worker handles
  v_left int := p_limit;
  v_slots int;
  v_tokens float8;
  v_got int;
  k docket.kinds;
BEGIN
  IF p_limit <= 0 THEN RETURN; END IF;
  SELECT array_agg(q) INTO v_queues FROM unnest(p_queues) q
   WHERE NOT EXISTS (SELECT 1 FROM docket.queues dq WHERE dq.name = q AND dq.paused_at IS NOT NULL);
  IF v_queues IS NULL THEN RETURN; END IF;

  SELECT array_agg(d.kind ORDER BY d.kind) INTO v_limited FROM docket.kinds d
   WHERE d.kind = ANY (p_kinds) AND (d.max_running IS NOT NULL OR d.rate_limit IS NOT NULL OR d.partition IS NOT NULL);

  IF v_limited IS NULL THEN
    RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, p_kinds, p_limit);
    RETURN;
  END IF;

  -- Limited kinds first: they are the scarce ones. Lock each kind's row (in kind order, so
  -- claimers never deadlock), then count in a later statement.
  FOR k IN
    SELECT * FROM docket.kinds d WHERE d.kind = ANY (v_limited) ORDER BY d.kind FOR UPDATE
  LOOP
    EXIT WHEN v_left <= 0;
    v_slots := v_left;
    IF k.max_running IS NOT NULL THEN
      SELECT least(v_slots, k.max_running - count(*)) INTO v_slots
        FROM docket.jobs j WHERE j.state = 'running' AND j.kind = k.kind;
    END IF;
    v_tokens := docket.rate_tokens_at(k, now());
    IF v_tokens IS NOT NULL THEN
      v_slots := least(v_slots, floor(v_tokens)::int);
    END IF;
    CONTINUE WHEN v_slots <= 0;  -- (limits removed while we waited for the lock: v_left slots)
    IF k.partition IS NOT NULL THEN
      RETURN QUERY SELECT * FROM docket.claim_keyed(p_worker, v_queues, k, v_slots);
    ELSE
      RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, ARRAY[k.kind], v_slots);
    END IF;
    GET DIAGNOSTICS v_got = ROW_COUNT;
    v_left := v_left - v_got;
    IF v_tokens IS NOT NULL AND v_got > 0 THEN
      UPDATE docket.kinds d SET rate_tokens = v_tokens - v_got, rate_at = greatest(now(), coalesce(d.rate_at, now()))
       WHERE d.kind = k.kind;
    END IF;
  END LOOP;

  SELECT array_agg(x) INTO v_open FROM unnest(p_kinds) x WHERE x <> ALL (v_limited);
  IF v_left > 0 AND v_open IS NOT NULL THEN
    RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, v_open, v_left);
  END IF;
END $$;

-- The claims are pinned as in 0001 (CREATE OR REPLACE dropped docket.claim's settings): the keyed
-- passes are planned at each call with these settings, so they use the key index.
ALTER FUNCTION docket.claim(uuid, text[], text[], int) SET enable_seqscan = off;
ALTER FUNCTION docket.claim(uuid, text[], text[], int) SET enable_bitmapscan = off;
ALTER FUNCTION docket.claim(uuid, text[], text[], int) SET plan_cache_mode = force_generic_plan;

-- A keyed kind's keys now: running jobs per key and the key's bucket, the busiest p_top keys
-- first (running, then emptiest bucket), with whether the key is at a limit and how many of its
-- jobs wait (counted up to 100000 through the key index). Keys neither running nor in a bucket
-- are not listed: they are below every limit. For docket limit --keys, GET /limits/{kind}/keys and
-- the hot keys of /metrics (a top N keeps the label count bounded).
CREATE FUNCTION docket.kind_hot_keys(p_kind text, p_top int)
RETURNS TABLE (key text, running bigint, rate_tokens float8, at_limit boolean, available bigint)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
  k docket.kinds;
  v_key_sql text;
BEGIN
  SELECT * INTO k FROM docket.kinds d WHERE d.kind = p_kind;
  IF k.partition IS NULL THEN RETURN; END IF;
  v_key_sql := docket.partition_key_sql(k.partition);
  RETURN QUERY EXECUTE format($q$
    WITH r AS (SELECT %1$s AS key, count(*) AS running FROM docket.jobs j
                WHERE j.state = 'running' AND j.kind = $1 GROUP BY 1),
    b AS (SELECT kk.key, docket.bucket_tokens(%2$L::int, %3$L::interval, %4$L::int, kk.rate_tokens, kk.rate_at, now()) AS tokens
            FROM docket.kind_keys kk WHERE kk.kind = $1),
    hot AS (
      SELECT coalesce(r.key, b.key) AS key, coalesce(r.running, 0) AS running, b.tokens
        FROM r FULL JOIN b ON b.key = r.key
       ORDER BY 2 DESC, 3 NULLS LAST, 1 LIMIT $2)
    SELECT h.key, h.running, h.tokens,
           coalesce(h.running >= %5$L::int, false) OR coalesce(h.tokens < 1, false),
           (SELECT count(*) FROM (SELECT 1 FROM docket.jobs j WHERE j.state = 'available' AND j.kind = $1
                                     AND %1$s = h.key LIMIT 100000) x)
      FROM hot h ORDER BY 2 DESC, 3 NULLS LAST, 1
  $q$, v_key_sql, k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst, k.max_running_per_key)
  USING p_kind, least(greatest(p_top, 0), 1000);
END $$;

-- A keyed kind's busiest key (its running count) and how many keys are at a limit now.
CREATE FUNCTION docket.kind_key_stats(k docket.kinds, OUT max_key_running bigint, OUT keys_at_limit bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF k.partition IS NULL THEN RETURN; END IF;
  EXECUTE format($q$
    WITH r AS (SELECT %1$s AS key, count(*) AS running FROM docket.jobs j
                WHERE j.state = 'running' AND j.kind = $1 GROUP BY 1),
    b AS (SELECT kk.key, docket.bucket_tokens(%2$L::int, %3$L::interval, %4$L::int, kk.rate_tokens, kk.rate_at, now()) AS tokens
            FROM docket.kind_keys kk WHERE kk.kind = $1)
    SELECT coalesce(max(r.running), 0),
           count(*) FILTER (WHERE coalesce(r.running >= %5$L::int, false) OR coalesce(b.tokens < 1, false))
      FROM r FULL JOIN b ON b.key = r.key
  $q$, docket.partition_key_sql(k.partition), k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst,
       k.max_running_per_key)
  INTO max_key_running, keys_at_limit USING k.kind;
END $$;

-- 0010's view with the keyed settings at the end (columns may only be added at the end):
-- the partition, max_running_per_key and the busiest key's running count, the per-key rate, and
-- how many keys are at a limit now (running at max_running_per_key or an empty bucket).
CREATE OR REPLACE VIEW docket.kind_limits AS
  WITH running AS (SELECT j.kind, count(*) AS running FROM docket.jobs j WHERE j.state = 'running' GROUP BY j.kind)
  SELECT coalesce(k.kind, r.kind) AS kind, k.max_running, coalesce(r.running, 0) AS running, k.max_retries,
         k.limit_source, k.config_max_running, k.queue, k.rate_limit, extract(epoch FROM k.rate_period)::float8 AS rate_period_s,
         CASE WHEN k.rate_limit IS NOT NULL THEN docket.rate_capacity(k.rate_limit, k.rate_period, k.rate_burst) END
           AS rate_burst,
         docket.rate_tokens_at(k, now()) AS rate_tokens,
         coalesce(coalesce(r.running, 0) >= k.max_running OR docket.rate_tokens_at(k, now()) < 1, false)
           OR coalesce(kr.keys_at_limit > 0, false) AS at_limit,
         k.partition, k.max_running_per_key, kr.max_key_running,
         k.rate_per_key_limit, extract(epoch FROM k.rate_per_key_period)::float8 AS rate_per_key_period_s,
         CASE WHEN k.rate_per_key_limit IS NOT NULL
              THEN docket.rate_capacity(k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst) END
           AS rate_per_key_burst,
         coalesce(kr.keys_at_limit, 0) AS keys_at_limit
    FROM docket.kinds k
    FULL JOIN running r ON r.kind = k.kind
    LEFT JOIN LATERAL docket.kind_key_stats(k) kr ON k.partition IS NOT NULL;

-- set_partition steers like set_rate (operators, and workers seed it from their TOML);
-- check_partition is the adapters' check before a write; the hot keys are read by every surface.
INSERT INTO docket.function_roles VALUES
  ('set_partition', 'docket_ops'), ('set_partition', 'docket_worker'),
  ('check_partition', 'docket_ops'), ('check_partition', 'docket_worker'),
  ('kind_hot_keys', 'docket_ops'), ('kind_hot_keys', 'docket_worker'), ('kind_hot_keys', 'docket_enqueuer')
ON CONFLICT DO NOTHING;
-- Steps of docket.claim and of the view: nobody calls them directly.
INSERT INTO docket.internal_functions VALUES ('claim_keyed') ON CONFLICT DO NOTHING;

SELECT docket.apply_security();
