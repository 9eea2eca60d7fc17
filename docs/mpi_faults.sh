#!/usr/bin/env bash
# Ranks that do not agree, and a rank that fails: each case must end every rank within 30 s
# with a non-zero status and one line naming the rank and the cause, and write no run.
# (1) rank 1 gets another seed: "config: rank 1 differs from rank 0";
# (2) the same options, but `model.source = ./m` names other weights in each rank's working
#     directory: "model weights: rank 1 differs from rank 0";
# (3) rank 1's ./m is missing: rank 1 fails to load, "rank 1 of 2: …", and rank 0, waiting in
#     the start-up exchange, is stopped too.
# (4) `zo replay` under mpirun is refused (it does not split its work over ranks).
# Needs a `zo` built with `--features mpi` and OpenMPI. Usage: bash docs/mpi_faults.sh [zo]
. "$(dirname "$0")/mpi_common.sh"
args="--config $PWD/configs/quickstart.toml --steps 5 --set train.eval_at_start=false --set train.eval_every=100000 -q"
# Two sets of weights: the quickstart model after 2 steps with two seeds.
"$zo" train $args --set train.steps=2 --set train.seed=1 --out "$tmp/a" >/dev/null
"$zo" train $args --set train.steps=2 --set train.seed=2 --out "$tmp/b" >/dev/null
mkdir -p "$tmp/r0" "$tmp/r1" "$tmp/r2" "$tmp/r3"
ln -s "$tmp/a/final" "$tmp/r0/m"
ln -s "$tmp/b/final" "$tmp/r1/m"
ln -s "$tmp/a/final" "$tmp/r2/m"
# Runs `zo train $args $1` on 2 ranks, rank r in directory $tmp/r$((r + $2)); expects failure
# within 30 s with stderr matching $3 and no run written.
expect_refusal() {
  local rc=0 t0 case=$4
  t0=$(date +%s)
  timeout 30 $mpi sh -c "cd \"$tmp/r\$((OMPI_COMM_WORLD_RANK + $2))\" && exec \"$zo\" train $args $1 --out \"$tmp/$case\"" \
    >/dev/null 2>"$tmp/$case.err" || rc=$?
  [ "$rc" != 0 ] || { echo "$case: mpirun exited 0"; exit 1; }
  [ "$rc" != 124 ] || { echo "$case: the ranks still ran after 30 s"; exit 1; }
  grep -q -- "$3" "$tmp/$case.err" || { echo "$case: no line matching '$3' in:"; cat "$tmp/$case.err"; exit 1; }
  [ ! -e "$tmp/$case/run.toml" ] || { echo "$case: a run was written"; exit 1; }
  echo "$case: refused in $(( $(date +%s) - t0 )) s, status $rc: $(grep -m1 -- "$3" "$tmp/$case.err")"
}
expect_refusal "--set model.source=./m --seed \$((7 + OMPI_COMM_WORLD_RANK))" 0 "config: rank 1 differs from rank 0" config
expect_refusal "--set model.source=./m" 0 "model weights: rank 1 differs from rank 0" weights
expect_refusal "--set model.source=./m" 2 "rank 1 of 2: .*cannot load" failed-rank
# The same ranks in agreeing directories train.
$mpi sh -c "cd \"$tmp/r\$((OMPI_COMM_WORLD_RANK * 2))\" && exec \"$zo\" train $args --set model.source=./m --out \"$tmp/ok\"" >/dev/null
[ -f "$tmp/ok/final/model.safetensors" ] || { echo "agreeing ranks did not train"; exit 1; }
echo "agreeing ranks train"
# Commands that do not split their work refuse several ranks (they would repeat it and write
# the same files).
rc=0
timeout 30 $mpi "$zo" replay "$tmp/ok" --out "$tmp/replayed" >/dev/null 2>"$tmp/replay.err" || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "zo replay runs in one process" "$tmp/replay.err" \
  || { echo "zo replay under mpirun was not refused (status $rc):"; cat "$tmp/replay.err"; exit 1; }
[ ! -e "$tmp/replayed" ] || { echo "zo replay under mpirun wrote its output"; exit 1; }
echo "zo replay under mpirun: refused"
