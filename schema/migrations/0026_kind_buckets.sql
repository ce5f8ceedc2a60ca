-- 0026_kind_buckets: a kind's rate-limit bucket (the tokens it held at rate_at) moves out of
-- docket.kinds into its own narrow table, docket.kind_buckets (issue 14: a rate set above what the
-- fleet reaches should cost at most 10% against no limit).
--
-- Every claim that takes jobs of a rated kind writes its bucket back. In docket.kinds that write
-- was an UPDATE of the kind's configuration row, and PostgreSQL evaluates every CHECK constraint of
-- a table on each UPDATE whatever columns it sets, preparing their expressions again for each
-- statement: docket.kinds has 21 (rates, keyed limits, retention, the partition's regular
-- expression...). Measured as backend CPU per statement (psql loops, rolled back): the bucket
-- UPDATE on docket.kinds 0.155-0.185 ms, the same on a table with the same columns and no CHECK
-- 0.095-0.100 ms, on a narrow table 0.075-0.090 ms. A 100-job claim of a kind with a rate of
-- 1,000,000/s over 100k waiting jobs: 1.40-1.44 ms of CPU against 1.20-1.24 ms for the same claim
-- without the rate; with the bucket in a narrow table 1.24-1.34 ms.
--
-- Also: a claim whose kinds are all limited (nothing open to leave slots to) looks for one waiting
-- job of each limited kind, not up to p_limit of them.
--
-- The bucket's semantics are 0010's: no row is a full bucket; a claim that takes nothing writes
-- nothing; a changed rate setting starts from a full bucket (set_rate deletes the row), setting the
-- same one again keeps it. Every write is made under the kind's row lock (claims lock it FOR
-- UPDATE, set_rate upserts the row), so claimers never race on a bucket.
CREATE TABLE docket.kind_buckets (
  kind text PRIMARY KEY REFERENCES docket.kinds (kind) ON DELETE CASCADE,
  rate_tokens float8 NOT NULL,
  rate_at timestamptz NOT NULL
);
INSERT INTO docket.kind_buckets (kind, rate_tokens, rate_at)
SELECT kind, rate_tokens, rate_at FROM docket.kinds
 WHERE rate_limit IS NOT NULL AND rate_tokens IS NOT NULL AND rate_at IS NOT NULL;

-- 0017's view, the bucket read from docket.kind_buckets (same columns).
CREATE OR REPLACE VIEW docket.kind_limits AS
  WITH running AS (SELECT j.kind, count(*) AS running FROM docket.jobs j WHERE j.state = 'running' GROUP BY j.kind)
  SELECT coalesce(k.kind, r.kind) AS kind, k.max_running, coalesce(r.running, 0) AS running, k.max_retries,
         k.limit_source, k.config_max_running, k.queue, k.rate_limit, extract(epoch FROM k.rate_period)::float8 AS rate_period_s,
         CASE WHEN k.rate_limit IS NOT NULL THEN docket.rate_capacity(k.rate_limit, k.rate_period, k.rate_burst) END
           AS rate_burst,
         t.tokens AS rate_tokens,
         coalesce(coalesce(r.running, 0) >= k.max_running OR t.tokens < 1, false)
           OR coalesce(kr.keys_at_limit > 0, false) AS at_limit,
         k.partition, k.max_running_per_key, kr.max_key_running,
         k.rate_per_key_limit, extract(epoch FROM k.rate_per_key_period)::float8 AS rate_per_key_period_s,
         CASE WHEN k.rate_per_key_limit IS NOT NULL
              THEN docket.rate_capacity(k.rate_per_key_limit, k.rate_per_key_period, k.rate_per_key_burst) END
           AS rate_per_key_burst,
         coalesce(kr.keys_at_limit, 0) AS keys_at_limit
    FROM docket.kinds k
    FULL JOIN running r ON r.kind = k.kind
    LEFT JOIN docket.kind_buckets b ON b.kind = k.kind
    CROSS JOIN LATERAL (SELECT docket.bucket_tokens(k.rate_limit, k.rate_period, k.rate_burst,
                                                    b.rate_tokens, b.rate_at, now()) AS tokens) t
    LEFT JOIN LATERAL docket.kind_key_stats(k) kr ON k.partition IS NOT NULL;

-- 0022's rate wait, the kind's bucket read from docket.kind_buckets.
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
        FROM docket.kinds k
        LEFT JOIN docket.kind_buckets b ON b.kind = k.kind
        CROSS JOIN LATERAL (SELECT docket.bucket_tokens(k.rate_limit, k.rate_period, k.rate_burst,
                                                        b.rate_tokens, b.rate_at, now()) AS tokens) t
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

-- 0010's set_rate: a changed setting starts from a full bucket (its row deleted).
CREATE OR REPLACE FUNCTION docket.set_rate(kind text, rate text, burst int DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  r record;
  v_changed boolean;
BEGIN
  PERFORM docket.check_name('kind', kind);
  r := docket.parse_rate(rate);
  IF burst IS NOT NULL AND rate IS NULL THEN
    RAISE EXCEPTION 'burst needs a rate' USING ERRCODE = '22023';
  END IF;
  IF burst IS NOT NULL AND (burst < 1 OR burst > 1000000) THEN
    RAISE EXCEPTION 'burst must be between 1 and 1000000, got %', burst USING ERRCODE = '22023';
  END IF;
  -- The row lock first (the claimers' lock), then the old setting under it.
  INSERT INTO docket.kinds AS k (kind) VALUES (set_rate.kind)
  ON CONFLICT ON CONSTRAINT kinds_pkey DO UPDATE SET kind = excluded.kind;
  SELECT (k.rate_limit, k.rate_period, k.rate_burst) IS DISTINCT FROM (r.n, r.period, set_rate.burst)
    INTO v_changed FROM docket.kinds k WHERE k.kind = set_rate.kind;
  IF v_changed THEN
    UPDATE docket.kinds k SET rate_limit = r.n, rate_period = r.period, rate_burst = set_rate.burst, updated_at = now()
     WHERE k.kind = set_rate.kind;
    DELETE FROM docket.kind_buckets b WHERE b.kind = set_rate.kind;
  ELSE
    UPDATE docket.kinds k SET updated_at = now() WHERE k.kind = set_rate.kind;
  END IF;
  PERFORM pg_notify('docket_control', 'limit');
END $$;

-- 0025's kind_room, given the kind's tokens (NULL: no rate) rather than reading them: the claim
-- has read the bucket already.
DROP FUNCTION docket.kind_room(docket.kinds, int, text[]);
CREATE FUNCTION docket.kind_room(k docket.kinds, p_limit int, p_queues text[], p_tokens float8) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  v_room int := p_limit;
BEGIN
  IF p_tokens IS NOT NULL THEN
    v_room := least(v_room, floor(p_tokens)::int);
  END IF;
  IF k.max_running IS NOT NULL AND v_room > 0 THEN
    SELECT least(v_room, k.max_running - count(*)) INTO v_room
      FROM (SELECT 1 FROM docket.jobs j WHERE j.state = 'running' AND j.kind = k.kind LIMIT k.max_running) r;
  END IF;
  IF p_queues IS NOT NULL AND v_room > 0 THEN
    SELECT count(*) INTO v_room
      FROM (SELECT 1 FROM docket.jobs j
             WHERE j.state = 'available' AND j.kind = k.kind AND j.queue = ANY (p_queues) LIMIT v_room) w;
  END IF;
  RETURN v_room;
END $$;

-- docket.claim as in 0025, reading each rated kind's bucket from docket.kind_buckets once in the
-- look and once under the lock, and writing it there. A later migration that re-creates
-- docket.claim starts from this one.
CREATE OR REPLACE FUNCTION docket.claim(p_worker uuid, p_queues text[], p_kinds text[], p_limit int)
RETURNS TABLE (id bigint, kind text, queue text, args jsonb, attempt int, max_retries int,
               priority smallint, run_at timestamptz, inserted_at timestamptz, unique_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_queues text[];
  v_open text[];      -- kinds without a limit
  v_limited text[];   -- kinds with a quota, a rate or a partition this worker handles
  v_roomy text[];     -- of those, the kinds the look found room and waiting jobs for
  v_kept int := 0;    -- the slots the look left for them
  v_open_limit int;
  v_open_got int := 0;
  v_left int := p_limit;
  v_slots int;
  v_tokens float8;
  v_bucket_at timestamptz;  -- the bucket's row (NULL: none, a full bucket)
  v_got int;
  k docket.kinds;
BEGIN
  IF p_limit <= 0 THEN RETURN; END IF;
  SELECT array_agg(q) INTO v_queues FROM unnest(p_queues) q
   WHERE NOT EXISTS (SELECT 1 FROM docket.queues dq WHERE dq.name = q AND dq.paused_at IS NOT NULL);
  IF v_queues IS NULL THEN RETURN; END IF;

  SELECT array_agg(d.kind ORDER BY d.kind) INTO v_limited FROM docket.kinds d
   WHERE d.kind = ANY (p_kinds) AND docket.kind_limited(d);

  IF v_limited IS NULL THEN
    RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, p_kinds, p_limit);
    RETURN;
  END IF;

  -- The look, without a lock: a kind whose quota is full, whose bucket is empty or that has no
  -- job waiting is left out (the claim that frees a slot, a finish_and_claim, sees it in its own
  -- transaction; the others at their next claim). The slots it finds are kept for the kind.
  SELECT array_agg(x) INTO v_open FROM unnest(p_kinds) x WHERE x <> ALL (v_limited);
  FOR k IN SELECT * FROM docket.kinds d WHERE d.kind = ANY (v_limited) ORDER BY d.kind LOOP
    v_tokens := NULL;
    IF k.rate_limit IS NOT NULL THEN
      SELECT docket.bucket_tokens(k.rate_limit, k.rate_period, k.rate_burst, b.rate_tokens, b.rate_at, now())
        INTO v_tokens FROM (SELECT) one LEFT JOIN docket.kind_buckets b ON b.kind = k.kind;
    END IF;
    -- With no open kind to leave slots to, one waiting job is enough to know (counting up to
    -- p_limit of them read as many index entries for nothing).
    v_slots := docket.kind_room(k, CASE WHEN v_open IS NULL THEN 1 ELSE p_limit END, v_queues, v_tokens);
    IF v_slots > 0 THEN
      v_roomy := v_roomy || k.kind;
      v_kept := v_kept + v_slots;
    END IF;
  END LOOP;

  -- The open kinds, before any lock is taken.
  v_open_limit := greatest(p_limit - v_kept, 0);
  IF v_open IS NOT NULL AND v_open_limit > 0 THEN
    RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, v_open, v_open_limit);
    GET DIAGNOSTICS v_open_got = ROW_COUNT;
    v_left := v_left - v_open_got;
  END IF;
  IF v_roomy IS NULL THEN RETURN; END IF;

  -- The limited kinds with room: lock each kind's row (in kind order), then count its room again
  -- in a later statement, whose snapshot includes every claim committed before the lock.
  FOR k IN
    SELECT * FROM docket.kinds d WHERE d.kind = ANY (v_roomy) ORDER BY d.kind FOR UPDATE
  LOOP
    EXIT WHEN v_left <= 0;
    v_tokens := NULL;
    v_bucket_at := NULL;
    IF k.rate_limit IS NOT NULL THEN
      SELECT docket.bucket_tokens(k.rate_limit, k.rate_period, k.rate_burst, b.rate_tokens, b.rate_at, now()), b.rate_at
        INTO v_tokens, v_bucket_at FROM (SELECT) one LEFT JOIN docket.kind_buckets b ON b.kind = k.kind;
    END IF;
    v_slots := docket.kind_room(k, v_left, NULL, v_tokens);
    CONTINUE WHEN v_slots <= 0;  -- (limits removed while we waited for the lock: v_left slots)
    IF k.partition IS NOT NULL THEN
      RETURN QUERY SELECT * FROM docket.claim_keyed(p_worker, v_queues, k, v_slots);
    ELSE
      RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, ARRAY[k.kind], v_slots);
    END IF;
    GET DIAGNOSTICS v_got = ROW_COUNT;
    v_left := v_left - v_got;
    IF v_tokens IS NOT NULL AND v_got > 0 THEN
      -- (Under the kind's row lock: no other claimer writes this bucket meanwhile.)
      IF v_bucket_at IS NULL THEN
        INSERT INTO docket.kind_buckets (kind, rate_tokens, rate_at) VALUES (k.kind, v_tokens - v_got, now());
      ELSE
        UPDATE docket.kind_buckets b SET rate_tokens = v_tokens - v_got, rate_at = greatest(now(), b.rate_at)
         WHERE b.kind = k.kind;
      END IF;
    END IF;
  END LOOP;

  -- Slots kept for the limited kinds that they did not fill (a keyed kind's keys at their limits,
  -- a claim of another worker first): the open kinds', when their claim came back full.
  IF v_left > 0 AND v_open IS NOT NULL AND v_open_got = v_open_limit THEN
    RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, v_open, v_left);
  END IF;
END $$;

-- The claim and its step are pinned as in 0025 (CREATE OR REPLACE dropped the claim's settings).
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOREACH f IN ARRAY ARRAY['docket.claim(uuid, text[], text[], int)'::regprocedure,
                           'docket.kind_room(docket.kinds, int, text[], float8)'::regprocedure]
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET enable_seqscan = off', f);
    EXECUTE format('ALTER FUNCTION %s SET enable_bitmapscan = off', f);
    EXECUTE format('ALTER FUNCTION %s SET plan_cache_mode = force_generic_plan', f);
    EXECUTE format('ALTER FUNCTION %s SET jit = off', f);
  END LOOP;
END $$;

-- Nothing reads the old columns now.
DROP FUNCTION docket.rate_tokens_at(docket.kinds, timestamptz);
ALTER TABLE docket.kinds DROP COLUMN rate_tokens, DROP COLUMN rate_at;

SELECT docket.apply_security();
