-- docket bench: $1 available no-op jobs of kind $2 in queue 'bench' spread over $3 tenants
-- (args {"tenant": "tN"}, round-robin by insertion), in one statement (untimed set-up).
-- $1 int count, $2 text kind, $3 int tenants
INSERT INTO docket.jobs (kind, queue, args)
SELECT $2, 'bench', jsonb_build_object('tenant', 't' || (g % $3::int)) FROM generate_series(1, $1::int) g
