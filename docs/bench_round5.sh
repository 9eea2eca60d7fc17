#!/usr/bin/env bash
# Round 5 (docs/BENCH.md): side by side, zo then the peer, T=64 only (time-limited session), then B3 ×2.
. "$(dirname "$0")/bench_common.sh" "$1"
log "zo b3"; $ZO -q bench --figure b3 --repeats 11 --warmup 2 --json "$OUT/zo_b3.json" >> "$OUT/log.txt" 2>&1
log "peer sweep"; $PY $PEER --preset 125m -B 16 -T 64 --mode sweep --impl mezo --warmup 2 --repeats 5 > "$OUT/peer_sweep.txt" 2>&1
log "zo b1 T64"; $ZO -q bench --figure b1 -T 64 --repeats 7 --warmup 2 --json "$OUT/zo_b1_T64.json" >> "$OUT/log.txt" 2>&1
log "peer forward T64"; $PY $PEER --preset 125m -B 16 -T 64 --mode forward --warmup 2 --repeats 7 > "$OUT/peer_fwd_T64.txt" 2>&1
log "zo b2 T64"; $ZO -q bench --figure b2 -T 64 --repeats 5 --warmup 1 --json "$OUT/zo_b2_T64.json" >> "$OUT/log.txt" 2>&1
log "peer step T64"; $PY $PEER --preset 125m -B 16 -T 64 --mode step --impl mezo --warmup 1 --repeats 5 > "$OUT/peer_step_T64.txt" 2>&1
log "zo b3 again"; $ZO -q bench --figure b3 --repeats 11 --warmup 2 --json "$OUT/zo_b3_2.json" >> "$OUT/log.txt" 2>&1
log "done"
