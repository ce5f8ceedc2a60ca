-- docket bench: flush dirty pages before a timed phase (needs superuser; skipped otherwise).
CHECKPOINT
