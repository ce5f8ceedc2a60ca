#!/usr/bin/env bash
# A/B of migration 0021 (issue 17): the always-NOTIFY triggers of 0001/0016 ("old") against
# 0021's ("new"), interleaved, 3 rounds each, one `docket bench SCENARIO` per round and variant;
# JSON lines to $OUT. Replaces the two trigger functions in place: a bench database only.
#   DATABASE_URL=... bench/notify_ab.sh enqueue_sql --seconds 5 --rounds 1
#   DATABASE_URL=... bench/notify_ab.sh latency
#   DATABASE_URL=... bench/notify_ab.sh drain --jobs 30000
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKET=${DOCKET:-$PWD/build/docket}
OUT=${OUT:-bench/results/notify-ab-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
mkdir -p "$(dirname "$OUT")"
SCEN=$1; shift
PSQL=(psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1)
"$DOCKET" migrate >/dev/null
new=$(awk '/^CREATE OR REPLACE FUNCTION docket.jobs_notify_insert/,/^-- The triggers run as/' schema/migrations/0021_notify.sql)
old=$(cat <<'SQL'
CREATE OR REPLACE FUNCTION docket.jobs_notify_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('docket_jobs', q.queue)
    FROM (SELECT DISTINCT n.queue FROM new_rows n WHERE n.state = 'available') q;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION docket.jobs_notify_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('docket_finished', NEW.id::text);
  RETURN NULL;
END $$;
SQL
)
for r in 1 2 3; do
  for v in old new; do
    if [ $v = old ]; then "${PSQL[@]}" -c "$old"; else "${PSQL[@]}" -c "$new"; fi
    "$DOCKET" bench "$SCEN" "$@" --metric "${SCEN}_$v" --run "$r" 2>/dev/null | tail -1 | tee -a "$OUT"
  done
done
"${PSQL[@]}" -c "$new"
echo "results: $OUT" >&2
