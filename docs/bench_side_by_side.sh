#!/usr/bin/env bash
# Side-by-side figures, zo then the peer, one right after the other. Usage: run_figures.sh OUTDIR
. "$(dirname "$0")/bench_common.sh" "$1"
for T in 64 128; do
  log "zo b1 T$T"; $ZO -q bench --figure b1 -T $T --repeats 7 --warmup 2 --json "$OUT/zo_b1_T$T.json" >> "$OUT/log.txt" 2>&1
  log "peer forward T$T"; $PY $PEER --preset 125m -B 16 -T $T --mode forward --warmup 2 --repeats 7 > "$OUT/peer_fwd_T$T.txt" 2>&1
  log "zo b2 T$T"; $ZO -q bench --figure b2 -T $T --repeats 5 --warmup 1 --json "$OUT/zo_b2_T$T.json" >> "$OUT/log.txt" 2>&1
  log "peer step T$T"; $PY $PEER --preset 125m -B 16 -T $T --mode step --impl mezo --warmup 1 --repeats 5 > "$OUT/peer_step_T$T.txt" 2>&1
done
log "zo b3"; $ZO -q bench --figure b3 --repeats 11 --warmup 2 --json "$OUT/zo_b3.json" >> "$OUT/log.txt" 2>&1
log "peer sweep"; $PY $PEER --preset 125m -B 16 -T 64 --mode sweep --impl mezo --warmup 2 --repeats 11 > "$OUT/peer_sweep.txt" 2>&1
log "zo b4 b5"; $ZO -q bench --figure b4 -T 64 --repeats 3 --warmup 1 --json "$OUT/zo_b4.json" >> "$OUT/log.txt" 2>&1
$ZO -q bench --figure b5 -T 64 --repeats 3 --warmup 1 --json "$OUT/zo_b5.json" >> "$OUT/log.txt" 2>&1
log "done"
