#!/usr/bin/env bash
# Round 24 of docs/BENCH.md: two builds side by side, alternated, the order swapped each round.
# OLD and NEW are directories holding each build's `sgemm_bench`, `generate_bench` and
# `eval_bench` examples (`cargo build --release -p zo-models --example …`, copied out of
# target/release). Usage: OLD=dir NEW=dir bash docs/bench_round24.sh OUTDIR [ROUNDS]
# Then: python3 docs/bench_round24.py OUTDIR
set -euo pipefail
OUT=${1:?usage: OLD=dir NEW=dir bench_round24.sh OUTDIR [ROUNDS]}
ROUNDS=${2:-3}
mkdir -p "$OUT"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
  for v in $order; do
    if [ "$v" = old ]; then d=${OLD:?}; else d=${NEW:?}; fi
    # Products of 1–8 rows with the weights read from memory (600 MB touched between calls).
    for n in 1 2 4 8; do
      for s in "$n,768,50272" "$n,768,3072" "$n,3072,768" "$n,768,768"; do
        "$d/sgemm_bench" --threads 2 --samples 9 --kernels best --cold-mb 600 --shape "$s" \
          | sed "s/^/$r $v sgemm /" >> "$OUT/sgemm.txt"
      done
    done
    # Greedy decoding: 1, 2, 4, 8 sequences together (64-token prompts, 32 new tokens), and
    # an evaluation group (8 prompts of 128–512 tokens, 8 new tokens).
    for b in 1 2 4 8; do
      "$d/generate_bench" $b 64 32 3 | sed "s/^/$r $v b$b /" >> "$OUT/gb.txt"
    done
    "$d/generate_bench" 8 512 8 2 128 0 | sed "s/^/$r $v group /" >> "$OUT/gb.txt"
    # Candidate scoring with the shared prompt (options of 6 and 3 tokens after the cache).
    "$d/eval_bench" 16 64 2 6 3 | sed "s/^/$r $v copa /" >> "$OUT/eb.txt"
    "$d/eval_bench" 8 200 4 3 3 | sed "s/^/$r $v record /" >> "$OUT/eb.txt"
  done
done
uptime
