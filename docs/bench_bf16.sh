#!/usr/bin/env bash
# zo f32 / bf16 compute and the peer in float32 / bfloat16, side by side (opt-125m shapes, B16,
# T64): B1 forward + loss, B2 GA/AS2P step with the task loss, the peer's forward and MeZO step.
# Paths from ZO, PY, PEER (docs/bench_common.sh). Usage: bash docs/bench_bf16.sh OUTDIR [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_common.sh"
OUT=${1:?usage: bench_bf16.sh OUTDIR [ROUNDS]}
ROUNDS=${2:-2}
mkdir -p "$OUT"
for r in $(seq "$ROUNDS"); do
  for c in f32 bf16; do
    "$ZO" -q bench --figure b1 -T 64 --repeats 5 --warmup 1 --compute $c --json "$OUT/zo-b1-$c-$r.json" >/dev/null
    "$ZO" -q bench --figure b2 -T 64 --repeats 3 --warmup 1 --compute $c --loss task --json "$OUT/zo-b2-$c-$r.json" >/dev/null
  done
  for d in float32 bfloat16; do
    "$PY" "$PEER" --preset 125m -B 16 -T 64 --mode forward --warmup 1 --repeats 5 --dtype $d > "$OUT/peer-fwd-$d-$r.json" 2>&1
    "$PY" "$PEER" --preset 125m -B 16 -T 64 --mode step --impl mezo --warmup 1 --repeats 3 --dtype $d > "$OUT/peer-step-$d-$r.json" 2>&1
  done
  uptime
done
