#!/usr/bin/env bash
# Does ZO still learn with bf16 compute (model.compute = "bf16")? Side by side with f32:
#  1. γ on the same steps: GA with lr = 1e-30 (updates far below an f32 ulp of the weights) keeps the weights where they are, so step k of the
#     f32 run and step k of the bf16 run measure γ = (f₊ − f₋)/2ρ along the same direction at
#     the same weights; reported: Pearson correlation, sign agreement, relative RMS difference.
#     On the quickstart model (pre-trained, hidden 64) and on opt-125m shapes (random weights,
#     hidden 768: longer dot products).
#  2. The quickstart run (AS2P, 500 steps, SST-2-format rows): dev loss and accuracy at each
#     evaluation, f32 against bf16.
# Usage: ZO=target/release/zo bash docs/bf16_study.sh OUTDIR
set -euo pipefail
ZO=${ZO:-target/release/zo}
OUT=${1:?usage: bf16_study.sh OUTDIR}
mkdir -p "$OUT"
common=(--task sst2 --data builtin:quickstart --set model.tokenizer=builtin:tiny
        --set train.eval_every=0 --set train.checkpoint_every=0 --set task.num_eval=16)
for c in f32 bf16; do
  "$ZO" train -q --model builtin:quickstart-opt "${common[@]}" --optimizer ga --lr 1e-30 \
    --steps 300 --batch-size 16 --set model.compute="\"$c\"" --out "$OUT/gamma-qs-$c" >/dev/null
  "$ZO" train -q --model builtin:opt-125m "${common[@]}" --optimizer ga --lr 1e-30 \
    --steps 40 --batch-size 16 --set model.compute="\"$c\"" --out "$OUT/gamma-125m-$c" >/dev/null
  "$ZO" train -q --config configs/quickstart.toml --set model.compute="\"$c\"" \
    --set train.checkpoint_every=0 --out "$OUT/quickstart-$c" >/dev/null
done
python3 - "$OUT" <<'PY'
import json, math, sys
out = sys.argv[1]
def rows(run, kind):
    return [json.loads(l) for l in open(f"{out}/{run}/metrics.jsonl") if f'"kind":"{kind}"' in l]
def pearson(x, y):
    n = len(x); mx = sum(x) / n; my = sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x); syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy)
for name in ("qs", "125m"):
    g32 = [r["gamma"] for r in rows(f"gamma-{name}-f32", "step")]
    g16 = [r["gamma"] for r in rows(f"gamma-{name}-bf16", "step")]
    n = min(len(g32), len(g16))
    g32, g16 = g32[:n], g16[:n]
    agree = sum((a > 0) == (b > 0) for a, b in zip(g32, g16)) / n
    rms = math.sqrt(sum((a - b) ** 2 for a, b in zip(g32, g16)) / n)
    scale = math.sqrt(sum(a * a for a in g32) / n)
    print(f"gamma {name}: steps {n}, pearson {pearson(g32, g16):.4f}, sign agreement {agree:.3f}, "
          f"rms(bf16 - f32) / rms(f32) {rms / scale:.4f}")
for c in ("f32", "bf16"):
    evals = rows(f"quickstart-{c}", "eval")
    line = " ".join(f"{e.get('step')}:{e.get('dev_loss', float('nan')):.3f}/{e.get('dev_accuracy', float('nan')):.2f}" for e in evals)
    print(f"quickstart {c} (step:dev_loss/dev_accuracy): {line}")
PY
