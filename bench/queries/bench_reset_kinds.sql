-- docket bench: forget limits and settings of the bench kinds.
DELETE FROM docket.kinds WHERE kind LIKE 'bench.%'
