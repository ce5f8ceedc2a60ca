#!/usr/bin/env bash
# make soak: `docket bench soak` for SOAK_SECONDS (default 7200) on DATABASE_URL, or on a throwaway
# cluster of its own (bench/cluster.sh). 500 jobs/s (SOAK_RATE) of no-op, always-failing (2 retries)
# and quota-limited jobs plus a crawl a minute, 2 workers, a REPEATABLE READ transaction held
# open from 30% of the run for min(10 min, 25% of the run). Writes bench/soak.csv and draws
# bench/soak.svg; the summary JSON line ends the output. Touches only queue 'bench', kinds 'bench.*'.
#   SOAK_SECONDS=900 make soak
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKET=${DOCKET:-$PWD/build/docket}
SOAK_SECONDS=${SOAK_SECONDS:-7200}
SOAK_RATE=${SOAK_RATE:-500}
if [ -z "${DATABASE_URL:-}" ]; then
  bench/cluster.sh start
  trap 'bench/cluster.sh stop' EXIT
  DATABASE_URL=$(bench/cluster.sh url)
fi
export DATABASE_URL
"$DOCKET" migrate >/dev/null
"$DOCKET" bench soak --seconds "$SOAK_SECONDS" --jobs "$SOAK_RATE" --workers 2 --csv bench/soak.csv |
  tee bench/soak.json
python3 bench/soak_plot.py bench/soak.csv bench/soak.svg
echo "figures: bench/soak.csv, bench/soak_indexes.csv, picture: bench/soak.svg, summary: bench/soak.json"
