#!/usr/bin/env bash
# Round 10 (docs/BENCH.md): every f32/bf16 figure of issues 17 and 20, zo then the peer, side by
# side and alternated, ROUNDS times: opt-125m shapes (B16, T64) B1 forward + loss and B2 GA /
# AS2P step (task loss) against mezo_torch_bench.py's forward and MeZO step in float32 and
# bfloat16; ResNet-18 and ResNet-50 (B1, B2) at B128, 32×32, CIFAR stem, 10 classes,
# against resnet_torch_bench.py. Summary: python3 docs/bench_round10.py OUTDIR.
# Paths from ZO, PY, PEER (docs/bench_common.sh); FIGURES="opt resnet" (the default) or either
# one alone. Usage: bash docs/bench_round10.sh OUTDIR [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/bench_common.sh" "${1:?usage: bench_round10.sh OUTDIR [ROUNDS]}"
ROUNDS=${2:-2}
FIGURES=${FIGURES:-opt resnet}
RPEER=${RPEER:-$ROOT/docs/peer/resnet_torch_bench.py}
grep -m1 "model name" /proc/cpuinfo > "$OUT/cpu.txt"
grep -m1 "^flags" /proc/cpuinfo >> "$OUT/cpu.txt"
for r in $(seq "$ROUNDS"); do
  for c in f32 bf16; do
    [[ " $FIGURES " == *" opt "* ]] || continue
    log "zo opt b1/b2 $c round $r"
    "$ZO" -q bench --figure b1 -T 64 --repeats 5 --warmup 1 --compute $c --json "$OUT/zo-b1-$c-$r.json" >/dev/null
    "$ZO" -q bench --figure b2 -T 64 --repeats 3 --warmup 1 --compute $c --loss task --json "$OUT/zo-b2-$c-$r.json" >/dev/null
  done
  for d in float32 bfloat16; do
    [[ " $FIGURES " == *" opt "* ]] || continue
    log "peer opt forward/step $d round $r"
    "$PY" "$PEER" --preset 125m -B 16 -T 64 --mode forward --warmup 1 --repeats 5 --dtype $d > "$OUT/peer-fwd-$d-$r.json" 2>&1
    "$PY" "$PEER" --preset 125m -B 16 -T 64 --mode step --impl mezo --warmup 1 --repeats 3 --dtype $d > "$OUT/peer-step-$d-$r.json" 2>&1
  done
  [[ " $FIGURES " == *" resnet "* ]] || continue
  log "resnet18 round $r"
  "$ZO" -q bench --model resnet18 --figure b1 --classes 10 --repeats 3 --threads 2 --json "$OUT/zo-r18-b1-$r.json" >/dev/null
  "$PY" "$RPEER" --depth 18 --mode forward --repeats 3 --threads 2 > "$OUT/peer-r18-fwd-$r.json" 2>&1
  "$ZO" -q bench --model resnet18 --figure b2 --classes 10 --repeats 2 --threads 2 --json "$OUT/zo-r18-b2-$r.json" >/dev/null
  "$PY" "$RPEER" --depth 18 --mode step --repeats 2 --threads 2 > "$OUT/peer-r18-step-$r.json" 2>&1
  log "resnet50 round $r"
  "$ZO" -q bench --model resnet50 --figure b1 --classes 10 --repeats 3 --threads 2 --json "$OUT/zo-r50-b1-$r.json" >/dev/null
  "$PY" "$RPEER" --depth 50 --mode forward --repeats 3 --threads 2 > "$OUT/peer-r50-fwd-$r.json" 2>&1
  "$ZO" -q bench --model resnet50 --figure b2 --classes 10 --repeats 2 --threads 2 --json "$OUT/zo-r50-b2-$r.json" >/dev/null
  "$PY" "$RPEER" --depth 50 --mode step --repeats 2 --threads 2 > "$OUT/peer-r50-step-$r.json" 2>&1
done
log done
