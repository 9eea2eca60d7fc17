#!/usr/bin/env bash
# Round 7 (docs/BENCH.md): the full side-by-side set (T64 and T128, B3, B4, B5), a second T64
# set, then the scaling table. Usage: bench_round7.sh OUTDIR; tables: python3 docs/bench_table.py OUTDIR/{a,b}
set -u
D=$(dirname "$0")
bash "$D/bench_side_by_side.sh" "$1/a"
bash "$D/bench_round5.sh" "$1/b"
. "$D/bench_common.sh" "$1/scaling"
log "zo scaling"; $ZO -q bench --figure scaling --repeats 2 --warmup 1 --json "$OUT/zo_scaling.json" >> "$OUT/log.txt" 2>&1
log "done"
