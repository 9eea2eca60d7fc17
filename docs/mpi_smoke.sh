#!/usr/bin/env bash
# Trains the quickstart config for a few steps in one process and under `mpirun -np 2` (each
# rank in its own run directory: rank-0-only writing is not implemented yet) and compares the
# final weights' sha256. Needs a `zo` built with `--features mpi` and OpenMPI.
# Usage: bash docs/mpi_smoke.sh [path/to/zo] [optimizer]
set -euo pipefail
cd "$(dirname "$0")/.."
zo=$(realpath "${1:-target/debug/zo}")
opt=${2:-as2p}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
extra=""
[ "$opt" = ga ] && extra="--set optimizer.lr=1e-3"
args="--config configs/quickstart.toml --optimizer $opt $extra --steps 20 --set train.eval_at_start=false --set train.eval_every=1000 -q"
"$zo" train $args --out "$tmp/one" >/dev/null
mpirun --allow-run-as-root --oversubscribe -np 2 \
  sh -c "\"$zo\" train $args --out \"$tmp/two-r\$OMPI_COMM_WORLD_RANK\"" >/dev/null
sha256sum "$tmp"/one/final/model.safetensors "$tmp"/two-r*/final/model.safetensors | sed "s|$tmp/||"
n=$(sha256sum "$tmp"/one/final/model.safetensors "$tmp"/two-r*/final/model.safetensors | cut -d' ' -f1 | sort -u | wc -l)
[ "$n" = 1 ] && echo "$opt: 1 and 2 ranks give the same weights" || { echo "$opt: weights differ"; exit 1; }
