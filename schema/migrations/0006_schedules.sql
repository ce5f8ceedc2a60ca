-- 0006: periodic work. A schedule is a row; every worker's maintainer calls docket.schedule_tick()
-- each second (sooner when a slot is due sooner). The tick locks due schedule rows with SKIP
-- LOCKED and, in the same transaction, enqueues each slot's job and advances the schedule: a
-- slot's job exists exactly once whatever the number of workers, their restarts or their
-- clocks (only the database clock is read). No leader, nothing held in memory.
--
-- Cron expressions are evaluated here, in SQL, in the schedule's IANA time zone with
-- PostgreSQL's time-zone database: the same code validates an expression when it is written
-- (22023 naming the field, nothing written) and computes its slots, for SQL, HTTP, CLI and TOML.

ALTER TABLE docket.jobs ADD COLUMN schedule text, ADD COLUMN scheduled_for timestamptz;
-- Belt and braces under the tick's row lock: one job per (schedule, slot). Partial: jobs that
-- no schedule made (nearly all) carry no entry.
CREATE UNIQUE INDEX jobs_schedule_slot_idx ON docket.jobs (schedule, scheduled_for) WHERE scheduled_for IS NOT NULL;

CREATE TABLE docket.schedules (
  name         text PRIMARY KEY,
  cron         text NOT NULL,
  tz           text NOT NULL DEFAULT 'UTC',
  kind         text NOT NULL,
  args         jsonb NOT NULL DEFAULT '{}',
  queue        text,               -- NULL: the enqueue default
  priority     int NOT NULL DEFAULT 0,
  max_retries  int,
  spread       interval,           -- slots shift by a fixed offset in [0, spread) derived from the name
  on_overlap   text NOT NULL DEFAULT 'skip' CHECK (on_overlap IN ('skip', 'allow', 'replace')),
  on_missed    text NOT NULL DEFAULT 'skip' CHECK (on_missed IN ('skip', 'latest', 'all')),
  enabled      boolean NOT NULL DEFAULT true,
  source       text NOT NULL DEFAULT 'runtime' CHECK (source IN ('runtime', 'config')),
  next_slot    timestamptz,        -- the next slot of the expression (UTC)
  next_run_at  timestamptz,        -- next_slot + the spread offset: when its job is enqueued
  last_slot    timestamptz,
  last_run_at  timestamptz,
  last_job_id  bigint,
  skipped      bigint NOT NULL DEFAULT 0,  -- slots not run: overlap with an unfinished job, or missed
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
-- The tick's only read: due, enabled schedules by time. Schedules that are not due cost nothing.
CREATE INDEX schedules_due_idx ON docket.schedules (next_run_at) WHERE enabled;

-- A cron field as the sorted list of values it allows: "*", "*/n", "a", "a-b", "a-b/n", "a/n",
-- comma lists; month and weekday names (JAN, MON). Raises 22023 naming the field.
CREATE FUNCTION docket.cron_field(p_text text, p_name text, p_lo int, p_hi int, p_names text[] DEFAULT NULL)
RETURNS int[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v_item text;
  v_range text;
  v_step int;
  v_a int;
  v_b int;
  v_out int[] := '{}';
  v_parts text[];
BEGIN
  IF p_text IS NULL OR p_text = '' THEN
    RAISE EXCEPTION 'cron: the % field is empty', p_name USING ERRCODE = '22023';
  END IF;
  FOREACH v_item IN ARRAY string_to_array(upper(p_text), ',') LOOP
    v_parts := string_to_array(v_item, '/');
    IF array_length(v_parts, 1) > 2 OR v_item = '' THEN
      RAISE EXCEPTION 'cron: "%" in the % field is not a value, range or step', v_item, p_name USING ERRCODE = '22023';
    END IF;
    v_range := v_parts[1];
    v_step := 1;
    IF array_length(v_parts, 1) = 2 THEN
      IF v_parts[2] !~ '^[0-9]{1,4}$' OR v_parts[2]::int = 0 THEN
        RAISE EXCEPTION 'cron: step "%" in the % field must be a positive number', v_parts[2], p_name
          USING ERRCODE = '22023';
      END IF;
      v_step := v_parts[2]::int;
    END IF;
    IF v_range = '*' THEN
      v_a := p_lo;
      v_b := p_hi;
    ELSE
      v_parts := string_to_array(v_range, '-');
      IF array_length(v_parts, 1) > 2 THEN
        RAISE EXCEPTION 'cron: "%" in the % field is not a range', v_range, p_name USING ERRCODE = '22023';
      END IF;
      FOR i IN 1..array_length(v_parts, 1) LOOP
        IF p_names IS NOT NULL AND array_position(p_names, v_parts[i]) IS NOT NULL THEN
          v_parts[i] := (array_position(p_names, v_parts[i]) - 1 + p_lo)::text;
        END IF;
        IF v_parts[i] !~ '^[0-9]{1,4}$' THEN
          RAISE EXCEPTION 'cron: "%" in the % field is not a number%', v_parts[i], p_name,
            CASE WHEN p_names IS NULL THEN '' ELSE ' or a name' END USING ERRCODE = '22023';
        END IF;
      END LOOP;
      v_a := v_parts[1]::int;
      -- "a/n" means a, a+n, ... up to the field's end (Vixie cron).
      v_b := CASE WHEN array_length(v_parts, 1) = 2 THEN v_parts[2]::int
                  WHEN v_step > 1 THEN p_hi ELSE v_a END;
    END IF;
    IF v_a < p_lo OR v_b > p_hi OR v_a > v_b THEN
      RAISE EXCEPTION 'cron: % in the % field is out of range %-%', v_range, p_name, p_lo, p_hi USING ERRCODE = '22023';
    END IF;
    v_out := v_out || ARRAY(SELECT generate_series(v_a, v_b, v_step));
  END LOOP;
  RETURN ARRAY(SELECT DISTINCT x FROM unnest(v_out) x ORDER BY x);
END $$;

-- A parsed expression. every_s > 0 for "@every <duration>" (slots at multiples of it since
-- the Unix epoch, so every host agrees); otherwise the five fields.
CREATE TYPE docket.cron_spec AS (
  every_s float8, minutes int[], hours int[], days int[], months int[], weekdays int[],
  days_any boolean, weekdays_any boolean);

-- Parses a cron expression: five fields (minute hour day-of-month month day-of-week; weekday 0
-- or 7 is Sunday), or @yearly @annually @monthly @weekly @daily @midnight @hourly, or
-- "@every 5m" (ms, s, m, h, d; at least 1 s). Raises 22023 with what is wrong.
CREATE FUNCTION docket.cron_parse(p_cron text) RETURNS docket.cron_spec
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v_expr text := btrim(coalesce(p_cron, ''));
  v_f text[];
  v_spec docket.cron_spec;
  v_m text[];
BEGIN
  IF v_expr = '' OR length(v_expr) > 200 THEN
    RAISE EXCEPTION 'cron must be a cron expression of at most 200 characters, like "*/5 * * * *" or "@every 10m"'
      USING ERRCODE = '22023';
  END IF;
  IF lower(v_expr) LIKE '@every%' THEN
    v_m := regexp_match(lower(v_expr), '^@every\s+([0-9]+(\.[0-9]+)?)\s*(ms|s|m|h|d)$');
    IF v_m IS NULL THEN
      RAISE EXCEPTION 'cron: "%" must be "@every N" with a unit ms, s, m, h or d, like "@every 5m"', v_expr
        USING ERRCODE = '22023';
    END IF;
    v_spec.every_s := v_m[1]::float8 * CASE v_m[3] WHEN 'ms' THEN 0.001 WHEN 's' THEN 1 WHEN 'm' THEN 60
                                                   WHEN 'h' THEN 3600 ELSE 86400 END;
    IF v_spec.every_s < 1 OR v_spec.every_s > 366 * 86400 THEN
      RAISE EXCEPTION 'cron: "%" must be between 1 second and 366 days', v_expr USING ERRCODE = '22023';
    END IF;
    RETURN v_spec;
  END IF;
  v_expr := CASE lower(v_expr)
    WHEN '@yearly' THEN '0 0 1 1 *' WHEN '@annually' THEN '0 0 1 1 *' WHEN '@monthly' THEN '0 0 1 * *'
    WHEN '@weekly' THEN '0 0 * * 0' WHEN '@daily' THEN '0 0 * * *' WHEN '@midnight' THEN '0 0 * * *'
    WHEN '@hourly' THEN '0 * * * *' ELSE v_expr END;
  IF v_expr LIKE '@%' THEN
    RAISE EXCEPTION 'cron: unknown macro "%"; use @yearly, @monthly, @weekly, @daily, @hourly or @every N', v_expr
      USING ERRCODE = '22023';
  END IF;
  v_f := regexp_split_to_array(v_expr, '\s+');
  IF array_length(v_f, 1) <> 5 THEN
    RAISE EXCEPTION 'cron: "%" has % fields; it needs 5: minute hour day-of-month month day-of-week', v_expr,
      array_length(v_f, 1) USING ERRCODE = '22023';
  END IF;
  v_spec.every_s := 0;
  v_spec.minutes := docket.cron_field(v_f[1], 'minute', 0, 59);
  v_spec.hours := docket.cron_field(v_f[2], 'hour', 0, 23);
  v_spec.days := docket.cron_field(v_f[3], 'day-of-month', 1, 31);
  v_spec.months := docket.cron_field(v_f[4], 'month', 1, 12,
                                     '{JAN,FEB,MAR,APR,MAY,JUN,JUL,AUG,SEP,OCT,NOV,DEC}');
  v_spec.weekdays := docket.cron_field(v_f[5], 'day-of-week', 0, 7, '{SUN,MON,TUE,WED,THU,FRI,SAT}');
  -- 7 is Sunday too.
  v_spec.weekdays := ARRAY(SELECT DISTINCT x % 7 FROM unnest(v_spec.weekdays) x ORDER BY 1);
  -- Vixie cron: when both day fields are restricted, a day matching either runs.
  v_spec.days_any := v_f[3] LIKE '*%';
  v_spec.weekdays_any := v_f[5] LIKE '*%';
  RETURN v_spec;
END $$;

-- An IANA zone name (Area/Location, or UTC/GMT) that PostgreSQL knows. POSIX strings such as
-- "foo+3", which PostgreSQL would accept as offsets, are refused. Raises 22023 naming tz.
CREATE FUNCTION docket.check_tz(p_tz text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF p_tz IS NULL OR NOT (p_tz IN ('UTC', 'GMT') OR p_tz ~ '^[A-Z][A-Za-z_]*(/[A-Za-z0-9_+-]+){1,2}$') THEN
    RAISE EXCEPTION 'tz must be an IANA time zone name like Europe/Lisbon or UTC, got %', coalesce('"' || p_tz || '"', 'null')
      USING ERRCODE = '22023';
  END IF;
  BEGIN
    PERFORM now() AT TIME ZONE p_tz;
  EXCEPTION WHEN invalid_parameter_value THEN
    RAISE EXCEPTION 'tz "%" is not a time zone PostgreSQL knows (see pg_timezone_names)', p_tz USING ERRCODE = '22023';
  END;
END $$;

-- The first slot of the expression strictly after p_after, in zone p_tz. Local wall-clock
-- times are walked day by day (at most ~8 years ahead, enough for a Feb 29 on a given weekday)
-- and converted with the zone's rules: a time skipped by a DST change runs at the shifted
-- instant (02:30 that does not exist runs at 03:30), a repeated time runs once.
CREATE FUNCTION docket.cron_next(p_cron text, p_tz text, p_after timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_spec docket.cron_spec := docket.cron_parse(p_cron);
  v_local timestamp;
  v_day date;
  v_first boolean := true;
  v_dom_ok boolean;
  v_dow_ok boolean;
  v_h int;
  v_m int;
  v_at timestamptz;
BEGIN
  IF p_after IS NULL OR NOT isfinite(p_after) THEN
    RAISE EXCEPTION 'cron_next needs a finite time, got %', p_after USING ERRCODE = '22023';
  END IF;
  IF v_spec.every_s > 0 THEN
    RETURN to_timestamp((floor(extract(epoch FROM p_after) / v_spec.every_s) + 1) * v_spec.every_s);
  END IF;
  v_local := date_trunc('minute', p_after AT TIME ZONE p_tz) + interval '1 minute';
  v_day := v_local::date;
  FOR i IN 0..3000 LOOP
    IF extract(month FROM v_day)::int = ANY (v_spec.months) THEN
      v_dom_ok := extract(day FROM v_day)::int = ANY (v_spec.days);
      v_dow_ok := extract(dow FROM v_day)::int = ANY (v_spec.weekdays);
      IF (CASE WHEN v_spec.days_any OR v_spec.weekdays_any THEN v_dom_ok AND v_dow_ok
               ELSE v_dom_ok OR v_dow_ok END) THEN
        FOREACH v_h IN ARRAY v_spec.hours LOOP
          CONTINUE WHEN v_first AND v_h < extract(hour FROM v_local)::int;
          FOREACH v_m IN ARRAY v_spec.minutes LOOP
            CONTINUE WHEN v_first AND v_h = extract(hour FROM v_local)::int AND v_m < extract(minute FROM v_local)::int;
            v_at := (v_day + make_time(v_h, v_m, 0)) AT TIME ZONE p_tz;
            IF v_at > p_after THEN
              RETURN v_at;
            END IF;
          END LOOP;
        END LOOP;
      END IF;
    END IF;
    v_day := v_day + 1;
    v_first := false;
  END LOOP;
  RAISE EXCEPTION 'cron: "%" has no slot in the next 8 years (a date that never comes, like 30 FEB?)', p_cron
    USING ERRCODE = '22023';
END $$;

-- The fixed offset in [0, spread) of a schedule's slots: from a hash of its name, so many
-- schedules of one expression (a schedule per project, every 4 hours) start evenly across the
-- window, and every host computes the same offset.
CREATE FUNCTION docket.schedule_offset(p_name text, p_spread interval) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p_spread IS NULL OR p_spread <= interval '0' THEN interval '0'
              ELSE make_interval(secs => (('x' || substr(md5(p_name), 1, 8))::bit(32)::bigint
                                          % greatest(1, floor(extract(epoch FROM p_spread) * 1000)::bigint)) / 1000.0)
         END
$$;

-- Creates or updates a schedule; validates every field first (22023 naming it; nothing is
-- written on error). The next slot is recomputed from now when the timing changed. A schedule
-- for a kind that no worker has ever registered is refused: the job would wait for nobody.
CREATE FUNCTION docket.schedule(name text, cron text, kind text, args jsonb DEFAULT '{}', tz text DEFAULT 'UTC',
                                queue text DEFAULT NULL, spread interval DEFAULT NULL,
                                on_overlap text DEFAULT 'skip', on_missed text DEFAULT 'skip',
                                enabled boolean DEFAULT true, priority int DEFAULT 0, max_retries int DEFAULT NULL,
                                source text DEFAULT 'runtime')
RETURNS docket.schedules
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_next timestamptz;
  v_row docket.schedules;
BEGIN
  IF schedule.name IS NULL OR btrim(schedule.name) = '' OR length(schedule.name) > 200
     OR schedule.name ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'name must be a non-empty string of at most 200 printable characters' USING ERRCODE = '22023';
  END IF;
  PERFORM docket.cron_parse(schedule.cron);
  PERFORM docket.check_tz(schedule.tz);
  PERFORM docket.check_job(schedule.kind, coalesce(schedule.args, '{}'), coalesce(schedule.queue, 'default'),
                           coalesce(schedule.priority, 0), schedule.max_retries, NULL);
  IF schedule.on_overlap IS NULL OR schedule.on_overlap NOT IN ('skip', 'allow', 'replace') THEN
    RAISE EXCEPTION 'on_overlap must be skip, allow or replace, got %', coalesce(schedule.on_overlap, 'null')
      USING ERRCODE = '22023';
  END IF;
  IF schedule.on_missed IS NULL OR schedule.on_missed NOT IN ('skip', 'latest', 'all') THEN
    RAISE EXCEPTION 'on_missed must be skip, latest or all, got %', coalesce(schedule.on_missed, 'null')
      USING ERRCODE = '22023';
  END IF;
  IF schedule.spread IS NOT NULL AND (schedule.spread < interval '0' OR schedule.spread > interval '366 days') THEN
    RAISE EXCEPTION 'spread must be between 0 and 366 days, got %', schedule.spread USING ERRCODE = '22023';
  END IF;
  IF schedule.source IS NULL OR schedule.source NOT IN ('runtime', 'config') THEN
    RAISE EXCEPTION 'source must be runtime or config' USING ERRCODE = '22023';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM docket.kinds k WHERE k.kind = schedule.kind)
     AND NOT EXISTS (SELECT 1 FROM docket.workers w WHERE schedule.kind = ANY (w.kinds)) THEN
    RAISE EXCEPTION 'kind % is not run by any worker that ever started (docket.workers, docket.kinds): check the name, or start a worker for it first',
      schedule.kind USING ERRCODE = '22023';
  END IF;
  v_next := docket.cron_next(schedule.cron, schedule.tz, now());
  INSERT INTO docket.schedules AS s (name, cron, tz, kind, args, queue, priority, max_retries, spread, on_overlap,
                                     on_missed, enabled, source, next_slot, next_run_at)
  VALUES (schedule.name, schedule.cron, schedule.tz, schedule.kind, coalesce(schedule.args, '{}'), schedule.queue,
          coalesce(schedule.priority, 0), schedule.max_retries, schedule.spread, schedule.on_overlap,
          schedule.on_missed, coalesce(schedule.enabled, true), schedule.source, v_next,
          v_next + docket.schedule_offset(schedule.name, schedule.spread))
  ON CONFLICT (name) DO UPDATE
     SET cron = EXCLUDED.cron, tz = EXCLUDED.tz, kind = EXCLUDED.kind, args = EXCLUDED.args, queue = EXCLUDED.queue,
         priority = EXCLUDED.priority, max_retries = EXCLUDED.max_retries, spread = EXCLUDED.spread,
         on_overlap = EXCLUDED.on_overlap, on_missed = EXCLUDED.on_missed, enabled = EXCLUDED.enabled,
         source = EXCLUDED.source, updated_at = now(),
         -- Same timing: keep the slot it is waiting for (a deploy re-applying TOML moves nothing).
         next_slot = CASE WHEN s.cron = EXCLUDED.cron AND s.tz = EXCLUDED.tz
                               AND s.spread IS NOT DISTINCT FROM EXCLUDED.spread AND s.next_slot IS NOT NULL
                          THEN s.next_slot ELSE EXCLUDED.next_slot END,
         next_run_at = CASE WHEN s.cron = EXCLUDED.cron AND s.tz = EXCLUDED.tz
                                 AND s.spread IS NOT DISTINCT FROM EXCLUDED.spread AND s.next_run_at IS NOT NULL
                            THEN s.next_run_at ELSE EXCLUDED.next_run_at END
  RETURNING * INTO v_row;
  PERFORM pg_notify('docket_control', 'schedule');
  RETURN v_row;
END $$;

-- Deletes a schedule (archiving an entity; also inside the caller's transaction). Its jobs stay.
CREATE FUNCTION docket.unschedule(name text) RETURNS boolean
LANGUAGE sql AS $$
  WITH gone AS (DELETE FROM docket.schedules s WHERE s.name = unschedule.name RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM gone)
$$;

-- Pause: no slot runs until resumed. Resume: the next slot after now (slots that passed while
-- paused are not run).
CREATE FUNCTION docket.pause_schedule(name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE docket.schedules s SET enabled = false, updated_at = now() WHERE s.name = pause_schedule.name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no schedule named %', pause_schedule.name USING ERRCODE = 'P0002';
  END IF;
END $$;

CREATE FUNCTION docket.resume_schedule(name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_next timestamptz;
  v_s docket.schedules;
BEGIN
  SELECT * INTO v_s FROM docket.schedules s WHERE s.name = resume_schedule.name FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no schedule named %', resume_schedule.name USING ERRCODE = 'P0002';
  END IF;
  IF v_s.enabled THEN
    RETURN;
  END IF;
  v_next := docket.cron_next(v_s.cron, v_s.tz, now());
  UPDATE docket.schedules s
     SET enabled = true, updated_at = now(), next_slot = v_next,
         next_run_at = v_next + docket.schedule_offset(s.name, s.spread)
   WHERE s.name = resume_schedule.name;
  PERFORM pg_notify('docket_control', 'schedule');
END $$;

-- Enqueues one slot's job of a locked schedule row; NULL when an unfinished earlier job of the
-- schedule holds the slot back (on_overlap = skip). p_slot NULL: a manual run.
CREATE FUNCTION docket.schedule_enqueue(p_s docket.schedules, p_slot timestamptz, p_overlap text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_last docket.job_state;
  v_job record;
BEGIN
  -- A slot that has its job already (next_slot set back by hand) is not run twice.
  IF p_slot IS NOT NULL AND EXISTS (SELECT 1 FROM docket.jobs j WHERE j.schedule = p_s.name AND j.scheduled_for = p_slot) THEN
    RETURN NULL;
  END IF;
  IF p_s.last_job_id IS NOT NULL AND p_overlap <> 'allow' THEN
    SELECT j.state INTO v_last FROM docket.jobs j WHERE j.id = p_s.last_job_id;
    IF v_last IN ('available', 'scheduled', 'running', 'retryable') THEN
      IF p_overlap = 'skip' THEN
        RETURN NULL;
      END IF;
      PERFORM docket.cancel(p_s.last_job_id);  -- replace
    END IF;
  END IF;
  SELECT * INTO v_job FROM docket.enqueue_job(p_s.kind, p_s.args, coalesce(p_s.queue, 'default'), p_s.priority,
                                              now(), p_s.max_retries, NULL);
  IF NOT v_job.created THEN
    RETURN NULL;  -- e.g. the crawl of this collection is still running
  END IF;
  UPDATE docket.jobs j SET schedule = p_s.name, scheduled_for = p_slot WHERE j.id = v_job.id;
  RETURN v_job.id;
END $$;

-- "Run now" (an admin's "scrape now"): a job at once, marked with the schedule's name and no
-- slot. The next slot does not move.
CREATE FUNCTION docket.run_schedule_now(name text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_s docket.schedules;
  v_id bigint;
BEGIN
  SELECT * INTO v_s FROM docket.schedules s WHERE s.name = run_schedule_now.name FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no schedule named %', run_schedule_now.name USING ERRCODE = 'P0002';
  END IF;
  v_id := docket.schedule_enqueue(v_s, NULL, 'allow');
  IF v_id IS NOT NULL THEN
    UPDATE docket.schedules s SET last_job_id = v_id, last_run_at = now() WHERE s.name = v_s.name;
  END IF;
  RETURN v_id;
END $$;

-- The tick: every due enabled schedule (at most p_batch, oldest first, SKIP LOCKED so workers
-- share them) gets its slot's job and its next slot in this one transaction. A slot is missed
-- when its time passed more than a minute ago (the fleet was down): on_missed = skip runs none
-- of the missed slots, latest runs the newest one, all runs each (at most the newest 100).
-- Returns how many jobs were enqueued, the lateness of each (seconds from the slot's time to
-- now) and the seconds until the next schedule is due.
CREATE FUNCTION docket.schedule_tick(p_batch int DEFAULT 500, OUT enqueued int, OUT lateness_s float8[],
                                     OUT next_due_in float8)
LANGUAGE plpgsql AS $$
DECLARE
  v_s docket.schedules;
  v_offset interval;
  v_slots timestamptz[];
  v_slot timestamptz;
  v_next timestamptz;
  v_id bigint;
  v_last_id bigint;
  v_skipped int;
  v_walked int;
  v_ran boolean;
  v_grace constant interval := interval '1 minute';
  v_cap constant int := 100;
BEGIN
  enqueued := 0;
  lateness_s := '{}';
  FOR v_s IN
    SELECT * FROM docket.schedules s
     WHERE s.enabled AND s.next_run_at <= now()
     ORDER BY s.next_run_at
     LIMIT p_batch
     FOR UPDATE SKIP LOCKED
  LOOP
    v_offset := docket.schedule_offset(v_s.name, v_s.spread);
    v_slots := '{}';
    v_skipped := 0;
    v_next := v_s.next_slot;
    v_walked := 0;
    -- Every slot whose time has come, oldest first. Bounded: past the cap only the newest are
    -- kept, and an outage longer than 100,000 slots jumps to the last minute's slots at once.
    WHILE v_next + v_offset <= now() LOOP
      v_walked := v_walked + 1;
      IF v_walked = 100000 THEN
        v_next := docket.cron_next(v_s.cron, v_s.tz, now() - v_offset - v_grace);
        v_skipped := v_skipped + 1;
        CONTINUE;
      END IF;
      v_slots := v_slots || v_next;
      IF cardinality(v_slots) > v_cap THEN
        v_slots := v_slots[2:];
        v_skipped := v_skipped + 1;
      END IF;
      v_next := docket.cron_next(v_s.cron, v_s.tz, v_next);
    END LOOP;
    -- Which of them run: the on-time one always; missed ones by policy.
    IF v_s.on_missed <> 'all' THEN
      DECLARE
        v_on_time timestamptz[] := ARRAY(SELECT x FROM unnest(v_slots) x WHERE x + v_offset > now() - v_grace ORDER BY x);
        v_missed timestamptz[] := ARRAY(SELECT x FROM unnest(v_slots) x WHERE x + v_offset <= now() - v_grace ORDER BY x);
      BEGIN
        IF v_s.on_missed = 'latest' AND cardinality(v_missed) > 0 AND cardinality(v_on_time) = 0 THEN
          v_on_time := ARRAY[v_missed[cardinality(v_missed)]];
          v_skipped := v_skipped + cardinality(v_missed) - 1;
        ELSE
          v_skipped := v_skipped + cardinality(v_missed);
        END IF;
        v_slots := v_on_time;
      END;
    END IF;
    v_last_id := v_s.last_job_id;
    v_ran := false;
    FOREACH v_slot IN ARRAY v_slots LOOP
      v_s.last_job_id := v_last_id;
      v_id := docket.schedule_enqueue(v_s, v_slot, v_s.on_overlap);
      IF v_id IS NULL THEN
        v_skipped := v_skipped + 1;
      ELSE
        v_last_id := v_id;
        v_ran := true;
        enqueued := enqueued + 1;
        lateness_s := lateness_s || extract(epoch FROM now() - (v_slot + v_offset))::float8;
      END IF;
    END LOOP;
    UPDATE docket.schedules s
       SET next_slot = v_next, next_run_at = v_next + v_offset,
           last_slot = CASE WHEN cardinality(v_slots) > 0 THEN v_slots[cardinality(v_slots)] ELSE s.last_slot END,
           last_run_at = CASE WHEN v_ran THEN now() ELSE s.last_run_at END,
           last_job_id = v_last_id, skipped = s.skipped + v_skipped
     WHERE s.name = v_s.name;
  END LOOP;
  SELECT extract(epoch FROM min(s.next_run_at) - now())::float8 INTO next_due_in
    FROM docket.schedules s WHERE s.enabled;
END $$;

-- Workers' sessions plan every statement for its arguments (force_custom_plan: right for the
-- claim). Inside the tick that would re-plan each cron evaluation's statements for every slot;
-- cached plans make a tick's cost per job about 3x lower (docket bench schedules).
ALTER FUNCTION docket.schedule_tick(int) SET plan_cache_mode = auto;

-- Schedules with their last job's state, for docket schedules, GET /schedules and dashboards.
CREATE VIEW docket.schedule_status AS
  SELECT s.name, s.cron, s.tz, s.kind, s.args, s.queue, s.priority, s.max_retries, s.spread, s.on_overlap,
         s.on_missed, s.enabled, s.source, s.next_run_at, s.last_slot, s.last_run_at, s.last_job_id,
         j.state AS last_job_state, s.skipped, s.created_at, s.updated_at
    FROM docket.schedules s LEFT JOIN docket.jobs j ON j.id = s.last_job_id;

-- The schedule functions run as their owner with a pinned search_path, callable by the roles
-- of 0004 (docket_ops manages schedules, docket_worker ticks them), like the rest of the API.
SELECT docket.apply_security();
