-- docket bench: forget the previous run's jobs, workers and limits (queue 'bench', kinds 'bench.*').
DELETE FROM docket.jobs WHERE queue = 'bench' OR kind LIKE 'bench.%'
