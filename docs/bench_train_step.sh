#!/usr/bin/env bash
# Two zo binaries on an SST-2-format training run, alternated: opt-125m shapes (random weights),
# the quickstart's rows, batch 16, 8 steps each; prints the median step time of steps 1-7
# (metrics.jsonl `ms`) per run. Usage: OLD=path/to/zo NEW=path/to/zo bash docs/bench_train_step.sh OUTDIR [ROUNDS]
# EXTRA adds arguments to both runs (e.g. EXTRA='--dtype bf16').
set -euo pipefail
OUT=${1:?usage: OLD=… NEW=… bench_train_step.sh OUTDIR [ROUNDS]}
ROUNDS=${2:-3}
mkdir -p "$OUT"
for round in $(seq "$ROUNDS"); do
  for v in old new; do
    if [ "$v" = old ]; then bin=${OLD:?}; else bin=${NEW:?}; fi
    rm -rf "$OUT/r-$v-$round"
    "$bin" train -q --model builtin:opt-125m --task sst2 --data builtin:quickstart \
      --set model.tokenizer=builtin:tiny --steps 8 --batch-size 16 --set train.eval_every=0 \
      --set train.checkpoint_every=0 ${EXTRA:-} --out "$OUT/r-$v-$round" >/dev/null 2>&1
    python3 - "$OUT/r-$v-$round/metrics.jsonl" "$v" "$round" <<'PY'
import json, statistics, sys
ms = [json.loads(l)["ms"] for l in open(sys.argv[1]) if '"kind":"step"' in l][1:]
print(sys.argv[2], sys.argv[3], "median step ms", round(statistics.median(ms), 1))
PY
  done
done
uptime
