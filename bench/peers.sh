#!/usr/bin/env bash
# make bench-peers: graphile-worker, the raw SQL limits and Docket on one PostgreSQL cluster (the
# one of ../shared/peers, started here or reused when it runs), repetitions interleaved; writes
# the table with ratios to bench/RESULTS.md.
#   REPS=3 (default)   PEERS=path/to/peers (default ../shared/peers)   KEEP_PG=1 leaves it running
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PEERS=$(cd "${PEERS:-$ROOT/../shared/peers}" && pwd)
DOCKET=${DOCKET:-$ROOT/build/docket}
export REPS=${REPS:-3}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
export RESULTS_FILE=${RESULTS_FILE:-$ROOT/bench/results/peers-$STAMP.jsonl}
mkdir -p "$(dirname "$RESULTS_FILE")"
PSQL="/usr/lib/postgresql/15/bin/psql -h 127.0.0.1 -p 55432 -U postgres -X -q -v ON_ERROR_STOP=1"
export DATABASE_URL=postgres://postgres@127.0.0.1:55432/docket_bench DOCKET

cd "$PEERS"
if [ ! -d node_modules/graphile-worker ]; then npm ci --no-audit --no-fund >/dev/null; fi
NODE=$PEERS/node_modules/.bin/node
[ -x "$NODE" ] || NODE=node
if ./pg.sh status 2>/dev/null | grep -q "server is running"; then
  echo "reusing the running peers cluster (127.0.0.1:55432)"
else
  ./pg.sh start >/dev/null
  if [ -z "${KEEP_PG:-}" ]; then trap '"$PEERS/pg.sh" stop >/dev/null || true' EXIT; fi
fi

# What the table is about: machine, versions, settings.
$NODE -e '
const os = require("os"), fs = require("fs");
const [pg, settings, gw] = process.argv.slice(1);
const line = { system: "env", metric: "env", ts: new Date().toISOString(),
  command: "make bench-peers (REPS=" + process.env.REPS + ")", cpus: os.cpus().length,
  cpu: os.cpus()[0].model, memory_gib: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(),
  postgres: pg, settings, node: process.version, graphile_worker: gw };
fs.appendFileSync(process.env.RESULTS_FILE, JSON.stringify(line) + "\n");
' "$($PSQL -d postgres -Atc 'select version()' | cut -d, -f1)" \
  "$($PSQL -d postgres -Atc "select string_agg(name || '=' || setting, ' ' order by name) from pg_settings where name in ('shared_buffers','synchronous_commit','max_connections','fsync','max_wal_size')")" \
  "$(grep -m1 '"version"' node_modules/graphile-worker/package.json | tr -dc '0-9.')"

# shellcheck source=bench/scenarios.sh
. "$ROOT/bench/scenarios.sh"
gw() { echo "--- graphile-worker $*" >&2; $NODE bench/graphile.mjs "$@" >/dev/null; }
for r in $(seq 1 "$REPS"); do
  echo "=== repetition $r/$REPS" >&2
  gw --mode throughput --variant batched --enqueue sql --run "$r"            # perfTest config (fetch 500)
  GW_LOCALQUEUE=2000 gw --mode throughput --variant batched --enqueue sql --run "$r"
  gw --mode latency --variant batched --run "$r"
  echo "--- raw SQL latency floor" >&2; $NODE bench/rawlatency.mjs --run "$r" >/dev/null
  echo "--- pgbench drain, steady, raw insert" >&2
  bench/pgbench.sh --reps 1 --batches 500 --clients "2 4" >/dev/null
  $PSQL -d postgres -c "DROP DATABASE IF EXISTS docket_bench" -c "CREATE DATABASE docket_bench"
  "$DOCKET" migrate >/dev/null
  docket_scenarios "$r" >/dev/null
done
docket_memory 1 >/dev/null
docket_growth 1 >/dev/null
$PSQL -d postgres -c "DROP DATABASE IF EXISTS docket_bench"

cd "$ROOT"
node bench/compare.mjs "$RESULTS_FILE" --markdown >bench/RESULTS.md
cat bench/RESULTS.md
echo "raw results: $RESULTS_FILE"
