-- docket bench: forget the benchmark's schedules.
DELETE FROM docket.schedules WHERE name LIKE 'bench-%'
