#!/usr/bin/env bash
# Round 23 of docs/BENCH.md: two builds side by side, alternated, the order swapped each round.
# OLD and NEW are directories holding each build's `zo` and the `forward_bench`,
# `generate_bench` and `eval_bench` examples (`cargo build --release --bin zo` and
# `cargo build --release -p zo-models --example …`, copied out of target/release).
# Usage: OLD=dir NEW=dir bash docs/bench_round23.sh OUTDIR [ROUNDS]
set -euo pipefail
OUT=${1:?usage: OLD=dir NEW=dir bench_round23.sh OUTDIR [ROUNDS]}
ROUNDS=${2:-3}
mkdir -p "$OUT"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  for v in $order; do
    if [ "$v" = old ]; then d=${OLD:?}; else d=${NEW:?}; fi
    for ml in 64 8; do
      "$d/forward_bench" --preset 125m -B 16 -T 64 --min-len $ml --warmup 1 --repeats 7 \
        | sed "s/^/$r $v fb$ml /" >> "$OUT/fb.txt"
    done
    "$d/generate_bench" 8 512 8 2 128 1 | sed "s/^/$r $v alone /" >> "$OUT/gb.txt"
    "$d/generate_bench" 8 512 8 2 128 0 | sed "s/^/$r $v together /" >> "$OUT/gb.txt"
    "$d/generate_bench" 16 64 32 3 | sed "s/^/$r $v b16 /" >> "$OUT/gb.txt"
    "$d/eval_bench" 16 64 2 6 3 | sed "s/^/$r $v copa /" >> "$OUT/eb.txt"
    "$d/eval_bench" 8 200 4 3 3 | sed "s/^/$r $v record /" >> "$OUT/eb.txt"
  done
done
OLD="$OLD/zo" NEW="$NEW/zo" bash "$(dirname "$0")/bench_train_step.sh" "$OUT/ts" "$ROUNDS" > "$OUT/ts.txt"
uptime
