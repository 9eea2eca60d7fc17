#!/usr/bin/env bash
# `zo reproduce` under mpirun: the miniature Table 6, SST-2 cells (GA cosine, GA constant, STP,
# AS2P), one seed, with the zero-shot / in-context baselines. (1) One process gives the
# reference; (2) 2 ranks give the same final weights, results, test predictions and baselines;
# (3) 2 ranks stopped by Ctrl-C once the first cell has a checkpoint, then `zo reproduce` in
# one process (resuming the stopped cell, training the others): the reference again.
# Needs a `zo` built with `--features mpi` and OpenMPI.
# Usage: bash docs/mpi_reproduce.sh [path/to/zo] [steps]
. "$(dirname "$0")/mpi_common.sh"
steps=${2:-100}
args="reproduce --table 6 --mini --tasks sst2 --seeds 1 --steps $steps --baselines -q"
# Every cell's final weights, results (but for `sweeps`: a stop's checkpoint adds one sweep to
# the count, as in one process) and test predictions, and the baselines.
digest() {
  (cd "$1" && { cat sst2-*/final/model.safetensors sst2-*/predictions_test.jsonl baselines/sst2.json
    grep -hv '"sweeps"' sst2-*/results.json; } | sha256sum | cut -d' ' -f1)
}
# On a difference: which files differ.
differ() {
  (cd "$1" && for f in sst2-*/final/model.safetensors sst2-*/results.json sst2-*/predictions_test.jsonl baselines/sst2.json; do
    cmp -s "$f" "$2/$f" || echo "  $f differs"; done)
}
"$zo" $args --out "$tmp/ref" >/dev/null 2>&1
ref=$(digest "$tmp/ref")
$mpi "$zo" $args --out "$tmp/two" >/dev/null 2>"$tmp/two.err"
[ "$(digest "$tmp/two")" = "$ref" ] || { echo "reproduce on 2 ranks differs from one process"; differ "$tmp/ref" "$tmp/two"; exit 1; }
[ "$(grep -c 'training →' "$tmp/two.err")" = 4 ] || { echo "not one progress line per cell (rank 0 alone prints):"; cat "$tmp/two.err"; exit 1; }
echo "reproduce: 2 ranks give the one-process runs, results and baselines"

$mpi "$zo" $args --out "$tmp/int" >/dev/null 2>&1 &
launcher=$!
first="$tmp/int/sst2-as2p-s1"
for _ in $(seq 600); do [ -f "$first/checkpoint/state.json" ] && break; sleep 0.05; done
[ -f "$first/checkpoint/state.json" ] || { echo "no checkpoint in $first after 30 s"; exit 1; }
[ ! -e "$first/final" ] || { echo "the first cell finished before the stop: raise steps"; exit 1; }
kill -INT "$launcher"
rc=0
wait "$launcher" || rc=$?
[ "$rc" != 0 ] || { echo "mpirun exited 0 after Ctrl-C"; exit 1; }
# (mpirun forwards the signal with some delay: the cell that stops, with a checkpoint, may be
# the first or a later one.)
[ ! -f "$tmp/int/report/report.md" ] || { echo "reproduce ran to its end despite Ctrl-C"; exit 1; }
"$zo" $args --out "$tmp/int" >/dev/null 2>"$tmp/int.err"
grep -q "resuming" "$tmp/int.err" || { echo "the stopped cell was not resumed:"; cat "$tmp/int.err"; exit 1; }
[ "$(digest "$tmp/int")" = "$ref" ] || { echo "stopped on 2 ranks, finished in one process: differs from the reference"; differ "$tmp/ref" "$tmp/int"; exit 1; }
echo "reproduce: stopped by Ctrl-C on 2 ranks, finished in one process: the reference"
