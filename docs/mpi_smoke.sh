#!/usr/bin/env bash
# Trains the quickstart config for a few steps in one process and under `mpirun -np 2` (or
# another number of ranks; all given the same --out: rank 0 alone writes it) and compares the
# final weights' sha256 and best/, the metrics records (dev loss and accuracy split over the
# ranks too), results.json and the test predictions; `zo eval` in one process and on the
# ranks; replays rank 0's trajectory; checks that only rank 0 printed on stdout and that the
# run records its number of ranks. Needs a `zo` built with `--features mpi` and OpenMPI.
# Usage: bash docs/mpi_smoke.sh [path/to/zo] [optimizer] [ranks, default 2] [KEY=VALUE, a --set]
# (e.g. task.objective=lm: the LM loss on the option tokens instead of the classification loss)
. "$(dirname "$0")/mpi_common.sh"
opt=${2:-as2p}
np=${3:-2}
set_extra=${4:-}
extra=""
[ "$opt" = ga ] && extra="--set optimizer.lr=1e-3"
[ -n "$set_extra" ] && extra="$extra --set $set_extra"
args="--config configs/quickstart.toml --optimizer $opt $extra --steps 20 --set train.eval_every=10 -q"
"$zo" train $args --out "$tmp/one" >/dev/null
mpirun --allow-run-as-root --oversubscribe -np "$np" --output-filename "$tmp/log" \
  "$zo" train $args --out "$tmp/two" >/dev/null
sha256sum "$tmp"/one/final/model.safetensors "$tmp"/two/final/model.safetensors | sed "s|$tmp/||"
n=$(sha256sum "$tmp"/one/final/model.safetensors "$tmp"/two/final/model.safetensors | cut -d' ' -f1 | sort -u | wc -l)
[ "$n" = 1 ] && echo "$opt: 1 and $np ranks give the same weights" || { echo "$opt: weights differ"; exit 1; }
cmp "$tmp/one/best/model.safetensors" "$tmp/two/best/model.safetensors" \
  || { echo "$opt: best/ differs"; exit 1; }
# Rank 0's trajectory replays (in one process) to the final weights.
"$zo" replay "$tmp/two" --out "$tmp/replayed" -q >/dev/null
cmp "$tmp/replayed/model.safetensors" "$tmp/two/final/model.safetensors" \
  || { echo "$opt: the $np-rank run's trajectory does not replay to its final weights"; exit 1; }
# The final evaluation (test and dev, split over the ranks) gives the same results and test
# predictions.
cmp "$tmp/one/results.json" "$tmp/two/results.json" || { echo "$opt: results.json differs"; exit 1; }
cmp "$tmp/one/predictions_test.jsonl" "$tmp/two/predictions_test.jsonl" \
  || { echo "$opt: predictions_test.jsonl differs"; exit 1; }
# So does `zo eval` split over the ranks (rank 0 alone writes the predictions and prints).
"$zo" eval --run "$tmp/two" --predictions "$tmp/eval1.jsonl" >"$tmp/eval1.json"
mpirun --allow-run-as-root --oversubscribe -np "$np" \
  "$zo" eval --run "$tmp/two" --predictions "$tmp/eval2.jsonl" >"$tmp/eval2.json"
cmp "$tmp/eval1.json" "$tmp/eval2.json" && cmp "$tmp/eval1.jsonl" "$tmp/eval2.jsonl" \
  || { echo "$opt: zo eval under $np ranks differs from 1 process"; exit 1; }
echo "$opt: results, test predictions and zo eval agree for 1 and $np ranks"
# The step and evaluation records (dev loss split over the ranks, dev accuracy) agree but for
# their timings (and the 2-rank run's exchange time).
python3 - "$tmp/one/metrics.jsonl" "$tmp/two/metrics.jsonl" <<'PY'
import json, sys
def recs(p):
    return [{k: v for k, v in json.loads(l).items() if k not in ("ms", "seconds", "exchange_ms")}
            for l in open(p)]
a, b = recs(sys.argv[1]), recs(sys.argv[2])
assert a == b, "the metrics records differ"
n = sum(r["kind"] == "step" for r in a)
e = sum(r["kind"] == "eval" and "dev_loss" in r for r in a)
assert n > 0 and e > 0, f"{n} steps, {e} evaluations with a dev loss"
ex = [json.loads(l)["exchange_ms"] for l in open(sys.argv[2]) if '"kind":"step"' in l]
assert len(ex) == n, "the 2-rank steps lack exchange_ms"
print(f"{n} step and {e} evaluation records agree; all-gather time: median {sorted(ex)[len(ex)//2]:.3f} ms/step")
PY
grep -q "\"world_size\": $np" "$tmp/two/versions.json" || { echo "versions.json lacks the world size"; exit 1; }
grep -q "$np ranks" "$tmp/two/run.toml" || { echo "run.toml lacks the world size"; exit 1; }
# Rank 0 printed results.json; the other ranks printed nothing.
for r in $(seq 1 $((np - 1))); do
  out=$(find "$tmp/log" -path "*rank.$r/*" -name stdout -exec cat {} +)
  [ -z "$out" ] || { echo "rank $r wrote to stdout: $out"; exit 1; }
done
f0=$(find "$tmp/log" -path '*rank.0/*' -name stdout)
[ -n "$f0" ] && grep -q '"steps": 20' $f0 || { echo "rank 0 did not print the results"; exit 1; }
[ "$(find "$tmp/log" -name stdout | wc -l)" = "$np" ] || { echo "not one stdout per rank in $tmp/log"; exit 1; }
echo "$opt: rank 0 alone wrote and printed"
