-- 0021_notify: a NOTIFY only when someone listens for it (issue 17). PostgreSQL serialises the
-- commits of every transaction that sent a NOTIFY (one global lock taken at commit and held over
-- its WAL flush), so a NOTIFY in every single-row enqueue capped SQL enqueues at about 0.6x the
-- same INSERT without it, and one per finished job cost the drain ~7%.
-- 1. Enqueues: a worker about to sleep with free slots marks its queues as waiting
--    (docket.listen_for_jobs); the insert trigger clears the mark of the queues it filled and
--    notifies just those. So one enqueue per idle period notifies, the others commit freely.
-- 2. Finishes: a waiter (JobWatch: GET /jobs/{id}?wait=, `docket wait`) registers the job ids it
--    waits for (docket.watch_jobs); the finish trigger notifies only a registered id.
-- Notices stay hints: workers still poll (poll_interval) and waiters still sweep (5 s), which
-- answer the one race left (an enqueue or finish that checked for a mark just before it became
-- visible and committed after the marker looked; workers look again 25 ms after marking).

-- Queues a listening worker sleeps on. Unlogged: after a crash it is empty, and a worker marks its
-- queues again the next time it goes idle (until then its poll finds the jobs). One row per queue
-- name a worker was configured with (at most 200 printable characters each: config checks).
CREATE UNLOGGED TABLE docket.queue_listeners (
  queue   text PRIMARY KEY,
  waiting boolean NOT NULL DEFAULT false  -- a worker sleeps on it: the next enqueue notifies
) WITH (fillfactor = 50);

-- Jobs some waiter awaits: (job, the JobWatch that waits). `until` (the wait's end plus a minute)
-- lets a later registration drop the rows of a process that died without removing them.
CREATE UNLOGGED TABLE docket.job_waiters (
  job_id bigint NOT NULL,
  watch  uuid NOT NULL,
  until  timestamptz NOT NULL,
  PRIMARY KEY (job_id, watch)
);
CREATE INDEX job_waiters_until_idx ON docket.job_waiters (until);

-- The insert trigger of 0001, now notifying only the queues a worker sleeps on (and clearing
-- their mark: further enqueues before the worker marks them again send nothing). It never waits
-- for a lock: a mark row another enqueue is clearing right now (it will notify at its commit, or
-- roll back) is skipped, and this enqueue notifies that queue itself, so neither a long
-- transaction around an enqueue nor a pool of connections queues up behind the row. A
-- rolled-back enqueue restores the mark with everything else.
CREATE OR REPLACE FUNCTION docket.jobs_notify_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  v_queue text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM docket.queue_listeners l WHERE l.waiting) THEN
    RETURN NULL;  -- nobody sleeps on any queue: the common case under load, one cheap read
  END IF;
  FOR v_queue IN
    UPDATE docket.queue_listeners l SET waiting = false
     WHERE l.queue IN (SELECT m.queue FROM docket.queue_listeners m
                        WHERE m.waiting AND m.queue IN (SELECT n.queue FROM new_rows n WHERE n.state = 'available')
                        FOR UPDATE SKIP LOCKED)
    RETURNING l.queue
  LOOP
    PERFORM pg_notify('docket_jobs', v_queue);
  END LOOP;
  -- Still marked in this transaction's view: rows locked by another transaction (skipped above).
  PERFORM pg_notify('docket_jobs', l.queue) FROM docket.queue_listeners l
    WHERE l.waiting AND l.queue IN (SELECT n.queue FROM new_rows n WHERE n.state = 'available');
  RETURN NULL;
END $$;

-- The finish trigger of 0016, now notifying only a job someone waits for (an index probe on a
-- table that is empty unless someone waits).
CREATE OR REPLACE FUNCTION docket.jobs_notify_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM docket.job_waiters w WHERE w.job_id = NEW.id) THEN
    PERFORM pg_notify('docket_finished', NEW.id::text);
  END IF;
  RETURN NULL;
END $$;

-- The triggers run as whoever writes docket.jobs: the owner through the SECURITY DEFINER enqueue
-- functions (nobody else may INSERT), docket_worker for completions (it reads every docket table,
-- job_waiters included, after apply_security below). No SET clause on them: it costs every call.
INSERT INTO docket.internal_functions (name) VALUES ('jobs_notify_insert') ON CONFLICT DO NOTHING;

-- A worker LISTENing on docket_jobs is about to sleep with free slots: marks `p_queues` waiting and
-- returns whether one of them already holds an available job of `p_kinds` (committed after the
-- worker's last claim but before the mark was visible to its enqueuer: claim once more).
CREATE FUNCTION docket.listen_for_jobs(p_queues text[], p_kinds text[]) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF cardinality(p_queues) > 1000 THEN
    RAISE EXCEPTION 'queues lists % names; the limit is 1000', cardinality(p_queues) USING ERRCODE = '22023';
  END IF;
  -- Never waits for a lock (a worker may hold one of few pooled connections): queues seen for the
  -- first time are inserted, marked ones are left, and a row locked right now is skipped (an
  -- enqueue is clearing it and notifies at its commit, or another worker is marking it).
  INSERT INTO docket.queue_listeners (queue, waiting)
  SELECT DISTINCT q, true FROM unnest(p_queues) q
   WHERE q IS NOT NULL AND btrim(q) <> '' AND length(q) <= 200
     AND NOT EXISTS (SELECT 1 FROM docket.queue_listeners l WHERE l.queue = q)
  ON CONFLICT (queue) DO NOTHING;
  UPDATE docket.queue_listeners l SET waiting = true
   WHERE l.queue IN (SELECT m.queue FROM docket.queue_listeners m
                      WHERE m.queue = ANY (p_queues) AND NOT m.waiting
                      FOR UPDATE SKIP LOCKED);
  RETURN EXISTS (
    SELECT 1 FROM unnest(p_queues) q(name)
     CROSS JOIN LATERAL (SELECT 1 FROM docket.jobs j
                          WHERE j.state = 'available' AND j.queue = q.name AND j.kind = ANY (p_kinds)
                          LIMIT 1) x);
END $$;

-- A JobWatch (`p_watch`, its id for this process) starts waiting for `p_add` until `p_until` and
-- stops waiting for `p_drop`; rows past their `until` (a watch that died) go at the same time.
-- Register before reading the jobs: a finish committed after the read is then notified.
CREATE FUNCTION docket.watch_jobs(p_watch uuid, p_add bigint[], p_drop bigint[], p_until timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF p_watch IS NULL OR cardinality(p_add) > 10000 OR cardinality(p_drop) > 10000 THEN
    RAISE EXCEPTION 'watch_jobs takes a watch id and at most 10000 ids to add and to drop' USING ERRCODE = '22023';
  END IF;
  DELETE FROM docket.job_waiters w
   WHERE (w.watch = p_watch AND w.job_id = ANY (p_drop)) OR w.until < now();
  INSERT INTO docket.job_waiters (job_id, watch, until)
  SELECT DISTINCT a, p_watch, least(p_until, now() + interval '1 day') FROM unnest(p_add) a WHERE a IS NOT NULL
  ON CONFLICT (job_id, watch) DO UPDATE SET until = greatest(docket.job_waiters.until, excluded.until);
END $$;

INSERT INTO docket.function_roles VALUES ('listen_for_jobs', 'docket_worker'),
                                         ('watch_jobs', 'docket_enqueuer'), ('watch_jobs', 'docket_worker'),
                                         ('watch_jobs', 'docket_ops')
  ON CONFLICT DO NOTHING;

SELECT docket.apply_security();
