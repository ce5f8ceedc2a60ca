-- docket bench soak: ends the transaction bench_soak_hold left open.
COMMIT
