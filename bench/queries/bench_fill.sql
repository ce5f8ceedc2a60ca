-- docket bench: $1 available no-op jobs of kind $2 in queue 'bench', inserted in one statement
-- (untimed set-up; the timed enqueue goes through docket.enqueue_many).
-- $1 int count, $2 text kind, $3 jsonb args
INSERT INTO docket.jobs (kind, queue, args) SELECT $2, 'bench', $3::jsonb FROM generate_series(1, $1::int)
