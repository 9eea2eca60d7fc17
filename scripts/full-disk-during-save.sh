#!/usr/bin/env bash
# A full disk during a checkpoint save: a run is interrupted after some checkpoints, moved to
# a filesystem with room for its files but not for one more checkpoint copy, and resumed. The
# resume must fail with exit status 1 and one line on stderr, and leave the previous
# checkpoint intact; given room again, `--resume` must end with the uninterrupted weights.
#
#   scripts/full-disk-during-save.sh          (ZO=path/to/zo, default target/release/zo)
#
# As root a small tmpfs is mounted (and grown afterwards); otherwise RLIMIT_FSIZE (`ulimit -f`)
# stands in for the full disk (a write past it fails with EFBIG: zo ignores SIGXFSZ).
set -euo pipefail
ZO=${ZO:-target/release/zo}
ZO=$(realpath "$ZO")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/zo-disk.XXXXXX")
MNT="$WORK/small"
cleanup() { mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"; rm -rf "$WORK"; }
trap cleanup EXIT
ARGS=(quickstart -q --steps 40 --set train.batch_size=4 --set train.eval_every=0
      --set train.checkpoint_every=5)
cd "$WORK"
"$ZO" "${ARGS[@]}" --out ref >/dev/null
REF=$(sha256sum ref/final/model.safetensors | cut -d' ' -f1)
# An interrupted run: stopped by SIGTERM after its second checkpoint (exit 130, checkpoint kept).
"$ZO" "${ARGS[@]}" --out cut >/dev/null 2>&1 &
pid=$!
until python3 -c "import json,sys; sys.exit(json.load(open(sys.argv[1]))['trainer']['step'] < 10)" cut/checkpoint/state.json 2>/dev/null; do sleep 0.01; done
kill -TERM "$pid"; wait "$pid" || true
before=$(cd cut/checkpoint && sha256sum state.json model.safetensors)
ckpt_kb=$(du -sk cut/checkpoint | cut -f1)
run_kb=$(du -sk cut | cut -f1)
mkdir -p "$MNT"
if mount -t tmpfs -o size=$((run_kb + ckpt_kb / 2 + 64))k tmpfs "$MNT" 2>/dev/null; then
  how="tmpfs of $((run_kb + ckpt_kb / 2 + 64)) KiB"
  cp -a cut "$MNT/run"
  set +e; "$ZO" train -q --resume "$MNT/run" >/dev/null 2>err.txt; code=$?; set -e
else
  model_kb=$(( $(stat -c %s cut/checkpoint/model.safetensors) / 1024 ))
  how="ulimit -f $((model_kb / 2)) KiB"
  cp -a cut "$MNT/run"
  set +e; (ulimit -f $((model_kb / 2)); exec "$ZO" train -q --resume "$MNT/run") >/dev/null 2>err.txt; code=$?; set -e
fi
lines=$(wc -l < err.txt)
after=$(cd "$MNT/run/checkpoint" && sha256sum state.json model.safetensors)
echo "full disk during save ($how): exit $code, $lines stderr line(s): $(cat err.txt)"
fail=0
[ "$code" -eq 1 ] || { echo "FAIL: exit status $code, expected 1"; fail=1; }
[ "$lines" -eq 1 ] || { echo "FAIL: $lines lines on stderr"; fail=1; }
[ "$before" = "$after" ] || { echo "FAIL: the previous checkpoint changed"; fail=1; }
[ ! -e "$MNT/run/.checkpoint.tmp" ] || { echo "FAIL: partial copy left behind"; fail=1; }
# With room again the run continues to the uninterrupted weights.
if mountpoint -q "$MNT"; then mount -o remount,size=64m "$MNT"; fi
"$ZO" train -q --resume "$MNT/run" >/dev/null
got=$(sha256sum "$MNT/run/final/model.safetensors" | cut -d' ' -f1)
if [ "$got" = "$REF" ]; then echo "previous checkpoint intact; resumed with room: final sha256 matches ($REF)"; else echo "FAIL: final sha256 $got != $REF"; fail=1; fi
exit $fail
