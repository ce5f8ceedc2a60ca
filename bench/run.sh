#!/usr/bin/env bash
# make bench: Docket's scenarios (docket bench ...) on DATABASE_URL, or on a throwaway cluster of
# its own with the peers harness' settings. Touches only queue 'bench' and kinds 'bench.*'.
#   REPS=3 make bench     repetitions (default 1); medians in the table
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKET=${DOCKET:-$PWD/build/docket}
REPS=${REPS:-1}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
export RESULTS_FILE=${RESULTS_FILE:-$PWD/bench/results/docket-$STAMP.jsonl}
mkdir -p "$(dirname "$RESULTS_FILE")"
if [ -z "${DATABASE_URL:-}" ]; then
  bench/cluster.sh start
  trap 'bench/cluster.sh stop' EXIT
  DATABASE_URL=$(bench/cluster.sh url)
fi
export DATABASE_URL DOCKET
"$DOCKET" migrate >/dev/null
# shellcheck source=bench/scenarios.sh
. bench/scenarios.sh
for r in $(seq 1 "$REPS"); do docket_scenarios "$r"; done
docket_memory 1
docket_growth 1
echo
node bench/compare.mjs "$RESULTS_FILE"
echo "raw results: $RESULTS_FILE"
