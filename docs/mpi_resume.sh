#!/usr/bin/env bash
# Resuming across rank counts, and a killed rank. The quickstart config with a checkpoint every
# 50 steps and a dev evaluation every 100; compared: the final/ and best/ weights and
# results.json. (1) An uninterrupted 1-rank run gives the reference; (2) a 2-rank run whose
# rank 1 is killed (SIGKILL) after the first checkpoint: mpirun must end non-zero within 30 s,
# and `zo train --resume` in one process must end with the reference; (3) a 1-rank run killed
# after its first checkpoint, resumed under `mpirun -np 2`: the reference again; (4) Ctrl-C to
# a 2-rank mpirun: a checkpoint at the step every rank stopped after, resumed: the reference.
# Needs a `zo` built with `--features mpi` and OpenMPI.
# Usage: bash docs/mpi_resume.sh [path/to/zo] [steps]
. "$(dirname "$0")/mpi_common.sh"
steps=${2:-600}
args="--config configs/quickstart.toml --steps $steps --set train.checkpoint_every=50 --set train.eval_every=100 -q"
# The final and best weights and results.json (the best checkpoint's evaluation).
sha() { cat "$1/final/model.safetensors" "$1/best/model.safetensors" "$1/results.json" | sha256sum | cut -d' ' -f1; }
# The same without results.json's `sweeps`: a stop's checkpoint adds one sweep to the count (as
# in one process), not to the weights.
sha_no_sweeps() { { cat "$1/final/model.safetensors" "$1/best/model.safetensors"; grep -v '"sweeps"' "$1/results.json"; } | sha256sum | cut -d' ' -f1; }
# Waits until the run in $1 has a checkpoint; fails if it finished first.
await_checkpoint() {
  for _ in $(seq 600); do
    [ -f "$1/checkpoint/state.json" ] && { [ -e "$1/final" ] && { echo "the run finished before the kill: raise steps"; exit 1; }; return 0; }
    sleep 0.05
  done
  echo "no checkpoint in $1 after 30 s"; exit 1
}

"$zo" train $args --out "$tmp/ref" >/dev/null
ref=$(sha "$tmp/ref")

# (2) 2 ranks, rank 1 killed; resumed by 1 rank.
$mpi sh -c "echo \$\$ > \"$tmp/pid.\$OMPI_COMM_WORLD_RANK\"; exec \"$zo\" train $args --out \"$tmp/two\"" \
  >/dev/null 2>"$tmp/two.err" &
launcher=$!
await_checkpoint "$tmp/two"
kill -9 "$(cat "$tmp/pid.1")"
t0=$(date +%s)
rc=0
timeout 30 tail --pid="$launcher" -f /dev/null || { echo "mpirun still runs 30 s after rank 1 was killed"; kill "$launcher"; exit 1; }
wait "$launcher" || rc=$?
[ "$rc" != 0 ] || { echo "mpirun exited 0 although rank 1 was killed"; exit 1; }
echo "rank 1 killed: mpirun ended with status $rc after $(( $(date +%s) - t0 )) s"
[ ! -e "$tmp/two/final" ] || { echo "the killed run wrote final/"; exit 1; }
done_at=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['trainer']['step'])" "$tmp/two/checkpoint/state.json")
"$zo" train --resume "$tmp/two" -q >/dev/null
[ "$(sha "$tmp/two")" = "$ref" ] || { echo "2 ranks → killed at step $done_at → 1 rank: weights differ from the uninterrupted run"; exit 1; }
echo "2 ranks, checkpoint at step $done_at, resumed by 1 rank: the uninterrupted run's weights"

# (3) 1 rank killed after a checkpoint; resumed by 2 ranks.
"$zo" train $args --out "$tmp/one" >/dev/null 2>&1 &
single=$!
await_checkpoint "$tmp/one"
{ kill -9 "$single"; wait "$single"; } 2>/dev/null || true
done_at=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['trainer']['step'])" "$tmp/one/checkpoint/state.json")
$mpi "$zo" train --resume "$tmp/one" -q >/dev/null
[ "$(sha "$tmp/one")" = "$ref" ] || { echo "1 rank → killed at step $done_at → 2 ranks: weights differ from the uninterrupted run"; exit 1; }
echo "1 rank, checkpoint at step $done_at, resumed by 2 ranks: the uninterrupted run's weights"
# The resumed logs hold every step once.
n=$(grep -c '"kind":"step"' "$tmp/one/metrics.jsonl")
[ "$n" = "$steps" ] || { echo "metrics.jsonl holds $n step lines, not $steps"; exit 1; }

# (4) Ctrl-C (SIGINT to mpirun) after the first checkpoint: every rank stops after the same
# step and rank 0 writes a checkpoint there (as many step lines as the checkpoint's step);
# resumed by 2 ranks: the reference again.
$mpi "$zo" train $args --out "$tmp/int" >/dev/null 2>"$tmp/int.err" &
launcher=$!
await_checkpoint "$tmp/int"
kill -INT "$launcher"
rc=0
timeout 30 tail --pid="$launcher" -f /dev/null || { echo "mpirun still runs 30 s after Ctrl-C"; kill "$launcher"; exit 1; }
wait "$launcher" || rc=$?
[ "$rc" != 0 ] || { echo "mpirun exited 0 after Ctrl-C"; exit 1; }
done_at=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['trainer']['step'])" "$tmp/int/checkpoint/state.json")
n=$(grep -c '"kind":"step"' "$tmp/int/metrics.jsonl")
[ "$n" = "$done_at" ] || { echo "Ctrl-C: the checkpoint is at step $done_at but $n steps were logged"; cat "$tmp/int.err"; exit 1; }
grep -q "stopped after step $done_at" "$tmp/int.err" || { echo "Ctrl-C: no stop message"; cat "$tmp/int.err"; exit 1; }
$mpi "$zo" train --resume "$tmp/int" -q >/dev/null
[ "$(sha_no_sweeps "$tmp/int")" = "$(sha_no_sweeps "$tmp/ref")" ] || { echo "Ctrl-C at step $done_at → 2 ranks: weights differ from the uninterrupted run"; exit 1; }
echo "2 ranks stopped by Ctrl-C after step $done_at (checkpoint there), resumed by 2 ranks: the uninterrupted run's weights"
