-- 0025_quota_claim: claims stay fast with a large backlog and a quota kind in the mix (issues 16
-- and 17). The 60-minute soak (bench/SOAK.md) drained its 100,000-job backlog at 286-607 jobs/s
-- after its held transaction, its claims waiting on the quota kind's row lock. Two causes:
--
-- - With one limited kind among a worker's kinds, every claim of the fleet (the producers and the
--   completers' refills) locked that kind's row and kept the lock to its commit, while it also
--   claimed the open kinds, and even when the quota was full and nothing of the kind could start:
--   every claimer of the fleet queued on one row lock.
-- - Each claim read the claim index (queue, priority, run_at, id) and filtered the kind on the
--   table: the claim of the limited kind stepped over every open job ahead of its own, under the
--   lock, and the claim of the open kinds stepped over every waiting job of the limited kind (tens
--   of thousands after the hold): O(backlog) per claim.
--
-- Now docket.claim first looks at each limited kind without a lock (docket.kind_room: the quota's
-- free slots, the bucket's tokens, the kind's waiting jobs). A kind without room is left out:
-- no lock, no scan. The open kinds are claimed next, leaving the slots the look found for the
-- limited kinds; the limited kinds' rows are locked last (so the lock is held only for their own
-- count and claim and the commit), their room counted again under the lock (a stale look may
-- only make a kind skip a claim or find fewer slots, never claim past its limits), and what they
-- did not take of the slots left for them goes to the open kinds. And every claim reads the
-- waiting jobs of each of its kinds through its own stretch of the claim index, now keyed by
-- (queue, kind), merged by (priority, run_at, id): no claim steps over other kinds' jobs.

-- The claim index, keyed by kind after the queue: (queue, kind, priority, run_at, id), partial
-- on available rows as before. Each (queue, kind) is one ordered stretch of it, so a claim reads
-- the waiting jobs of its own kinds and no others'. It replaces 0001's (queue, priority, run_at,
-- id) rather than joining it: an enqueued job writes three index entries (the primary key, this
-- one, jobs_list_state_idx), and a fourth made a bulk enqueue 35% slower (50,000 rows in one
-- INSERT: 0.42-0.57 s without it, 0.58-0.75 s with it, interleaved in one database).
-- (CREATE INDEX blocks writes to docket.jobs while it reads the available rows.)
DROP INDEX docket.jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON docket.jobs (queue, kind, priority, run_at, id) WHERE state = 'available';

-- claim_from as in 0001, reading one ordered stretch of the claim index per (queue, kind), a
-- stream. With one stream it locks (SKIP LOCKED) and claims the first p_limit waiting jobs, as
-- before. With several, a first read without locks finds how many of the best p_limit waiting
-- jobs (priority, run_at, id) each stream holds, its share; each stream then locks its share
-- (SKIP LOCKED: a claimer that meets another's locks takes the stream's next jobs), so a claim
-- locks at most p_limit jobs however many kinds and queues it reads. The same reads as the
-- one-statement claim of schema/queries/job_claim_open.sql.
CREATE OR REPLACE FUNCTION docket.claim_from(p_worker uuid, p_queues text[], p_kinds text[], p_limit int)
RETURNS TABLE (id bigint, kind text, queue text, args jsonb, attempt int, max_retries int,
               priority smallint, run_at timestamptz, inserted_at timestamptz, unique_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
    WITH streams AS (
      SELECT q.name, w.kind FROM unnest(p_queues) AS q(name)
      CROSS JOIN (SELECT DISTINCT u.kind FROM unnest(p_kinds) AS u(kind)) AS w
    ),
    ahead AS (
      SELECT x.name, x.kind FROM streams s
      CROSS JOIN LATERAL (
        SELECT s.name, s.kind, j.priority, j.run_at, j.id FROM docket.jobs j
         WHERE j.state = 'available' AND j.queue = s.name AND j.kind = s.kind
         ORDER BY j.priority, j.run_at, j.id
         LIMIT p_limit) x
      ORDER BY x.priority, x.run_at, x.id
      LIMIT p_limit
    ),
    shares AS (
      SELECT s.name, s.kind, p_limit::bigint AS n FROM streams s WHERE (SELECT count(*) FROM streams) = 1
      UNION ALL
      SELECT a.name, a.kind, count(*) FROM ahead a WHERE (SELECT count(*) FROM streams) > 1 GROUP BY a.name, a.kind
    ),
    c AS (
      SELECT x.id FROM shares s
      CROSS JOIN LATERAL (
        SELECT j.id FROM docket.jobs j
         WHERE j.state = 'available' AND j.queue = s.name AND j.kind = s.kind
         ORDER BY j.priority, j.run_at, j.id
         LIMIT s.n
         FOR UPDATE SKIP LOCKED) x
      LIMIT p_limit  -- (the shares add up to at most p_limit: a bound for the generic plan's estimate)
    )
    UPDATE docket.jobs j
       SET state = 'running', attempt = j.attempt + 1, started_at = now(), finished_at = NULL, worker = p_worker
     WHERE j.id = ANY (ARRAY(SELECT c.id FROM c))
    RETURNING j.id, j.kind, j.queue, j.args, j.attempt,
              coalesce(j.max_retries, (SELECT k.max_retries FROM docket.kinds k WHERE k.kind = j.kind), 20),
              j.priority, j.run_at, j.inserted_at, j.unique_key;
END $$;

-- How many jobs a limited kind may start now, at most p_limit: its quota's free slots (running
-- jobs counted up to max_running) and its bucket's whole tokens; with p_queues, also at most its
-- jobs waiting in those queues (counted up to that many). Under the kind's row lock, in a later
-- statement than the lock, the count sees every claim committed before the lock was granted:
-- docket.claim's room. Without the lock it is the look that lets a kind without room be skipped.
CREATE FUNCTION docket.kind_room(k docket.kinds, p_limit int, p_queues text[] DEFAULT NULL) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  v_room int := p_limit;
  v_tokens float8 := docket.rate_tokens_at(k, now());
BEGIN
  IF v_tokens IS NOT NULL THEN
    v_room := least(v_room, floor(v_tokens)::int);
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

-- docket.claim as in 0024 (which kinds are limited: docket.kind_limited; quotas, rates and
-- partitions enforced under the kind's row lock, rows locked in kind order so claimers never
-- deadlock), with the limited kinds looked at without the lock first and locked last (see the
-- top of this file). The returned rows: the open kinds' jobs, then the limited kinds'. A later
-- migration that re-creates docket.claim starts from this one.
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
  FOR k IN SELECT * FROM docket.kinds d WHERE d.kind = ANY (v_limited) ORDER BY d.kind LOOP
    v_slots := docket.kind_room(k, p_limit, v_queues);
    IF v_slots > 0 THEN
      v_roomy := v_roomy || k.kind;
      v_kept := v_kept + v_slots;
    END IF;
  END LOOP;

  -- The open kinds, before any lock is taken.
  SELECT array_agg(x) INTO v_open FROM unnest(p_kinds) x WHERE x <> ALL (v_limited);
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
    v_tokens := docket.rate_tokens_at(k, now());
    v_slots := docket.kind_room(k, v_left);
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

  -- Slots kept for the limited kinds that they did not fill (a keyed kind's keys at their limits,
  -- a claim of another worker first): the open kinds', when their claim came back full.
  IF v_left > 0 AND v_open IS NOT NULL AND v_open_got = v_open_limit THEN
    RETURN QUERY SELECT * FROM docket.claim_from(p_worker, v_queues, v_open, v_left);
  END IF;
END $$;

-- The claims are pinned as in 0001 (CREATE OR REPLACE dropped docket.claim's settings), and so
-- are its new steps: the plans are the index plans whatever the statistics said when they were made.
-- And no JIT: a generic plan does not know p_limit, so the claim's estimate (every queue times
-- every kind times a tenth of the kind's rows) passed jit_above_cost, and compiling the statement
-- took 20 ms of a claim that reads 50 rows.
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOREACH f IN ARRAY ARRAY['docket.claim(uuid, text[], text[], int)'::regprocedure,
                           'docket.claim_from(uuid, text[], text[], int)'::regprocedure,
                           'docket.kind_room(docket.kinds, int, text[])'::regprocedure]
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET enable_seqscan = off', f);
    EXECUTE format('ALTER FUNCTION %s SET enable_bitmapscan = off', f);
    EXECUTE format('ALTER FUNCTION %s SET plan_cache_mode = force_generic_plan', f);
    EXECUTE format('ALTER FUNCTION %s SET jit = off', f);
  END LOOP;
END $$;

-- Steps of docket.claim: nobody calls them directly.
INSERT INTO docket.internal_functions VALUES ('kind_room') ON CONFLICT DO NOTHING;

SELECT docket.apply_security();
