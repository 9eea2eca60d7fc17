#!/usr/bin/env bash
# SIGKILLs `zo train` at random moments while it writes checkpoints, N times, and checks that
# every killed run still has a loadable checkpoint and that `zo train --resume` ends with the
# same weights (sha256 of final/model.safetensors) as one uninterrupted run.
#
#   scripts/kill-during-checkpoint.sh [N=50]        (ZO=path/to/zo, default target/release/zo)
#
# The run writes a checkpoint after every step (and best/ after every evaluation), so most of
# its time is spent saving; every other kill waits for a checkpoint write to begin and lands
# 0-15 ms into it. The output counts the kills that left a partial `.checkpoint.tmp` or
# `.best.tmp` (caught mid-write). Exit status 0 only when all N trials match.
set -euo pipefail
N=${1:-50}
ZO=${ZO:-target/release/zo}
ZO=$(realpath "$ZO")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/zo-kill.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STEPS=${STEPS:-24}
ARGS=(quickstart -q --steps "$STEPS" --set train.batch_size=4 --set train.eval_every=4
      --set train.checkpoint_every=1)
cd "$WORK"
t0=$(date +%s.%N)
"$ZO" "${ARGS[@]}" --out ref >/dev/null
t1=$(date +%s.%N)
REF=$(sha256sum ref/final/model.safetensors | cut -d' ' -f1)
RUN_MS=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%d", (b-a)*1000}')
echo "reference: $STEPS steps in ${RUN_MS} ms, final sha256 $REF"
ok=0; midwrite=0; fails=0; i=0; late=0
while [ "$i" -lt "$N" ]; do
  d="t$((i+1))"
  rm -rf "$d"
  "$ZO" "${ARGS[@]}" --out "$d" >/dev/null 2>&1 &
  pid=$!
  # Once the first checkpoint exists, wait a uniformly random part of the run; on every other
  # trial then also wait for the next checkpoint write to begin and kill 0-15 ms into it.
  until [ -f "$d/checkpoint/state.json" ] || ! kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
  delay=$(awk -v s="$RANDOM$RANDOM" -v ms="$RUN_MS" 'BEGIN{srand(s); printf "%.3f", rand()*ms*0.7/1000}')
  sleep "$delay"
  if [ $((i % 2)) -eq 1 ]; then
    until [ -d "$d/.checkpoint.tmp" ] || ! kill -0 "$pid" 2>/dev/null; do sleep 0.001; done
    sleep "$(awk -v s="$RANDOM$RANDOM" 'BEGIN{srand(s); printf "%.4f", rand()*0.015}')"
  fi
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ -d "$d/final" ]; then
    # The run ended before the kill: not a trial; run it again.
    late=$((late+1)); rm -rf "$d"; continue
  fi
  i=$((i+1))
  caught=""
  if [ -d "$d/.checkpoint.tmp" ] || [ -d "$d/.best.tmp" ]; then midwrite=$((midwrite+1)); caught=" (mid-write)"; fi
  if ! python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$d/checkpoint/state.json" 2>/dev/null \
       || [ ! -s "$d/checkpoint/model.safetensors" ]; then
    echo "trial $i: NO LOADABLE CHECKPOINT$caught"; fails=$((fails+1)); continue
  fi
  step=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['trainer']['step'])" "$d/checkpoint/state.json")
  if ! "$ZO" train -q --resume "$d" >/dev/null 2>"$d.err"; then
    echo "trial $i: resume failed: $(cat "$d.err")"; fails=$((fails+1)); continue
  fi
  got=$(sha256sum "$d/final/model.safetensors" | cut -d' ' -f1)
  if [ "$got" = "$REF" ]; then ok=$((ok+1)); verdict="same sha256"; else fails=$((fails+1)); verdict="SHA256 DIFFERS ($got)"; fi
  echo "trial $i: killed after checkpoint step $step$caught, resumed: $verdict"
  rm -rf "$d" "$d.err"
done
echo "kill during checkpoint write: $ok/$N trials resumed to the reference sha256 ($midwrite killed mid-write of checkpoint/ or best/; $late runs that ended before their kill were repeated)"
[ "$ok" -eq "$N" ]
