#!/usr/bin/env bash
# Round 25 of docs/BENCH.md: every figure of the f32 / bf16 speed table on one machine, zo then
# the peer, side by side and alternated, ROUNDS times: docs/bench_round10.sh's opt-125m figures
# (B1 forward + loss and B2 GA step with the task loss, f32 and bf16, against the peer's forward
# and MeZO step in float32 / bfloat16), then B3 (one-term and two-term sweep) against the peer's
# sweep, and the FMA peak of each thread count (docs/peer/peak_fma.c). Summary:
# python3 docs/bench_round25.py OUTDIR. Paths from ZO, PY, PEER (docs/bench_common.sh).
# Usage: bash docs/bench_round25.sh OUTDIR [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_common.sh" "${1:?usage: bench_round25.sh OUTDIR [ROUNDS]}"
ROUNDS=${2:-3}
grep -m1 "model name" /proc/cpuinfo > "$OUT/cpu.txt"
grep -m1 -E "^cpu family|^model\s" /proc/cpuinfo >> "$OUT/cpu.txt"
grep -m1 "^flags" /proc/cpuinfo >> "$OUT/cpu.txt"
gcc -O2 -march=native -fopenmp "$ROOT/docs/peer/peak_fma.c" -o "$OUT/peak_fma"
for r in $(seq "$ROUNDS"); do
  log "fma peak round $r"
  "$OUT/peak_fma" > "$OUT/peak-$r.txt" 2>&1
  # One round of docs/bench_round10.sh in a folder of its own, its files renamed to this round.
  rm -rf "$OUT/one-round" && FIGURES=opt bash "$here/bench_round10.sh" "$OUT/one-round" 1 > /dev/null
  for f in "$OUT"/one-round/zo-*-1.json "$OUT"/one-round/peer-*-1.json; do
    b=$(basename "$f"); mv "$f" "$OUT/${b%-1.json}-$r.json"
  done
  cat "$OUT/one-round/log.txt" >> "$OUT/log.txt"
  log "zo b3 round $r"
  "$ZO" -q bench --figure b3 --repeats 11 --warmup 2 --json "$OUT/zo-b3-$r.json" > /dev/null
  log "peer sweep round $r"
  "$PY" "$PEER" --preset 125m -B 16 -T 64 --mode sweep --impl mezo --warmup 2 --repeats 11 \
    > "$OUT/peer-sweep-$r.json" 2>&1
done
log done
