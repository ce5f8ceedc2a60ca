# Sourced by bench/run.sh and bench/peers.sh: Docket's scenarios, one JSON line each, appended
# to $RESULTS_FILE. Needs DOCKET (the binary) and DATABASE_URL.
docket_bench() { # run metric scenario [flags...]
  local run=$1 metric=$2; shift 2
  echo "--- docket $metric (run $run)" >&2
  "$DOCKET" bench "$@" --metric "$metric" --run "$run" | tee -a "$RESULTS_FILE"
}

docket_scenarios() { # run
  local r=$1
  docket_bench "$r" enqueue enqueue --jobs 50000
  docket_bench "$r" enqueue_sql enqueue_sql --seconds 5 --rounds 1
  docket_bench "$r" drain drain --jobs 50000
  docket_bench "$r" drain_w2 drain --jobs 50000 --workers 2
  docket_bench "$r" drain_w4 drain --jobs 50000 --workers 4
  docket_bench "$r" latency latency
  docket_bench "$r" steady steady --seconds 10
  docket_bench "$r" quota quota
  docket_bench "$r" keyed keyed --jobs 20000 --concurrency 100
  docket_bench "$r" rate rate --jobs 20000
  docket_bench "$r" bloat bloat --jobs 50000
}

docket_memory() { # run: worker memory over a 1M drain (once per run of the harness)
  docket_bench "$1" drain_1m drain --jobs 1000000
}

docket_growth() { # run: per-job cost by table size (once per run of the harness; --large is not run)
  docket_bench "$1" growth growth --seconds 5
}
