-- Before a COPY of jobs: a sequence value below every id the COPY will take, and the
-- transaction's now() (what column defaults give the copied rows).
SELECT nextval(pg_get_serial_sequence('docket.jobs', 'id')) AS floor, extract(epoch FROM now())::float8 AS now_s
