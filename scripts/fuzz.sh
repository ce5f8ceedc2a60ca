#!/usr/bin/env bash
# Runs each libFuzzer target for FUZZ_SECONDS, then merges what it found into its committed
# corpus (tests/fuzz/corpus/<target>), keeping only inputs that add coverage.
# Usage: scripts/fuzz.sh BUILD_DIR TARGET...   Fails on the first crash (input in BUILD_DIR/artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
shift
seconds=${FUZZ_SECONDS:-60}
mkdir -p "$build/artifacts"
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
for t in "$@"; do
  bin=$build/fuzz/docket_fuzz_$t
  corpus=tests/fuzz/corpus/$t
  work=$build/corpus-$t
  rm -rf "$work" "$work.merged"
  mkdir -p "$work" "$work.merged"
  echo "fuzz: $t for ${seconds}s"
  "$bin" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-" "$work" "$corpus" 2>&1 | grep -E "^(#|==|SUMMARY|stat::number_of_executed_units|INFO: -max)" | tail -5
  test "${PIPESTATUS[0]}" -eq 0
  # Keep the corpus small: only inputs that add coverage over the committed ones.
  # Edge coverage only (no hit counters): a few hundred files, not thousands.
  "$bin" -merge=1 -use_counters=0 "$corpus" "$work" >/dev/null 2>&1
  echo "fuzz: $t corpus now $(ls "$corpus" | wc -l) files"
done
