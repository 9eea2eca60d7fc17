#!/usr/bin/env bash
# Runs every fuzz target for MINUTES minutes, JOBS at a time (niced), and prints a table of
# executions and crashes per target.
#
#   fuzz/run-all.sh [MINUTES=10] [JOBS=2] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Inputs are built
# with AddressSanitizer and debug assertions; libFuzzer's limits: 2 GiB RSS, 1 GiB per
# allocation (a header claiming 10^12 elements must be refused before it allocates), 25 s
# per input (a hang). New corpus entries go to fuzz/corpus-run/<target>/ (not committed);
# findings to fuzz/artifacts/<target>/ — minimise one with `cargo fuzz tmin`, fix the bug,
# and commit the input under fuzz/regressions/<target>/, which `cargo test` replays.
set -euo pipefail
cd "$(dirname "$0")"
MINUTES=${1:-10}
JOBS=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(opt_model pytorch_bin tokenizer task_rows config resume_state)
FLAGS=(-O --debug-assertions)
LIMITS=(-max_total_time=$((MINUTES * 60)) -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=25
        -max_len=65536 -print_final_stats=1)
nice -n 19 cargo +nightly fuzz build "${FLAGS[@]}" >/dev/null
mkdir -p logs
START=$(date +%s)
run_one() {
  local t=$1
  mkdir -p "corpus-run/$t" "artifacts/$t"
  nice -n 19 cargo +nightly fuzz run "${FLAGS[@]}" "$t" "corpus-run/$t" "corpus/$t" -- \
    "${LIMITS[@]}" >"logs/$t.log" 2>&1 || true
  rm -rf /dev/shm/zo-fuzz-"$t"-* 2>/dev/null || true
}
export -f run_one
export FLAGS_STR="${FLAGS[*]}" LIMITS_STR="${LIMITS[*]}"
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c \
  'FLAGS=($FLAGS_STR); LIMITS=($LIMITS_STR); run_one "$@"' _ {}
echo "| target | minutes | executions | crashes |"
echo "|---|---|---|---|"
status=0
for t in "${TARGETS[@]}"; do
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "logs/$t.log" | tail -1 | grep -o '[0-9]*$' || echo "?")
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "logs/$t.log" | tail -1 | awk '{print $5}' || true)
  crashes=$(find "artifacts/$t" -type f -newermt "@$START" | wc -l)
  [ "$crashes" -eq 0 ] || status=1
  [ -n "$secs" ] || { status=1; secs="?"; }
  mins=$([ "$secs" = "?" ] && echo "?" || awk -v s="$secs" 'BEGIN{printf "%.1f", s/60}')
  echo "| $t | $mins | $execs | $crashes |"
done
exit $status
