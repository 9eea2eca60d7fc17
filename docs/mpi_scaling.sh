#!/usr/bin/env bash
# Step time and examples/s of the quickstart config (batch 16, 100 steps): 1 rank with 1 and
# with 2 threads (RAYON_NUM_THREADS) against 2 ranks with 1 thread each; the median of each
# run's `ms` per step in metrics.jsonl (written by rank 0 for 2 ranks), and for 2 ranks the
# median of `exchange_ms`, rank 0's time inside the all-gathers of a step (waiting for rank 1
# included). Needs a `zo` built with `--features mpi` and OpenMPI.
# Usage: bash docs/mpi_scaling.sh [path/to/zo] [repeats]
. "$(dirname "$0")/mpi_common.sh"
reps=${2:-2}
a="--config configs/quickstart.toml --steps 100 --set train.eval_at_start=false --set train.eval_every=1000 -q"
med() {
  python3 -c "
import json, sys, statistics as s
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in rows if r['kind'] == 'step']
m = s.median(r['ms'] for r in rows)
ex = [r['exchange_ms'] for r in rows if 'exchange_ms' in r]
tail = f', all-gather median {s.median(ex):.3f} / mean {s.mean(ex):.3f} / max {max(ex):.2f} ms/step' if ex else ''
print(f'{sys.argv[2]}: {m:.2f} ms/step, {16000/m:.0f} examples/s{tail}')" "$1" "$2"
}
uptime
for r in $(seq "$reps"); do
  RAYON_NUM_THREADS=1 "$zo" train $a --out "$tmp/a$r" >/dev/null
  med "$tmp/a$r/metrics.jsonl" "1 rank x 1 thread "
  RAYON_NUM_THREADS=2 "$zo" train $a --out "$tmp/b$r" >/dev/null
  med "$tmp/b$r/metrics.jsonl" "1 rank x 2 threads"
  $mpi -x RAYON_NUM_THREADS=1 \
    "$zo" train $a --out "$tmp/c$r" >/dev/null
  med "$tmp/c$r/metrics.jsonl" "2 ranks x 1 thread"
done
uptime
