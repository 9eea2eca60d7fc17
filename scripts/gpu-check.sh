#!/usr/bin/env bash
# Every GPU check of zo in one go, for a machine with one NVIDIA GPU and no Rust toolchain:
# give it a `zo` built elsewhere with `--features cuda` (scripts/build-cuda.sh makes
# target/cuda/zo-cuda.gz) and it prints one summary table. Under 10 minutes on one H100/H200.
#
# Usage: bash scripts/gpu-check.sh ZO_BINARY[.gz] [OUTDIR]
# Env:   DEVICE (default cuda; `cpu` dry-runs the script's logic on a machine without a GPU),
#        PY (default python3: the peer's PyTorch, for the copy bandwidth and the peer's sweep),
#        STEPS (default 60: the training runs' steps).
#
# What it checks:
#  1. the native sweep kernel on the GPU: its first use compares it bit for bit with the CPU
#     kernel (every dtype and distribution; zo logs the outcome) and `zo bench --figure b3`
#     says whether it ran (`native`), on opt-125m shapes in f32, bf16, f16 and on opt-13b in f16
#     (GB/s against PyTorch's device-to-device copy on the same GPU);
#  2. a short training run on the GPU per dtype (the quickstart: its forward on candle's CUDA
#     ops, every sweep native), whose trajectory replays on the CPU to the same model, sha256
#     for sha256: the GPU's directions are the CPU's, bit for bit; and whose first step's
#     losses are those of the same step on the CPU under --candle-ops (candle's CPU ops, the
#     op sequence the GPU runs), within rounding; an evaluation on the GPU (generation through
#     the KV cache, candidate scoring) against the same on the CPU under --candle-ops;
#  3. the peer's MeZO sweep on the same GPU (docs/peer/mezo_torch_bench.py --mode sweep).
set -uo pipefail
cd "$(dirname "$0")/.."

zo_in=${1:?usage: gpu-check.sh ZO_BINARY[.gz] [OUTDIR]}
out=${2:-gpu-check-out}
dev=${DEVICE:-cuda}
py=${PY:-python3}
steps=${STEPS:-60}
mkdir -p "$out"
out=$(cd "$out" && pwd)

zo=$zo_in
if [[ $zo_in == *.gz ]]; then
  zo=$out/zo
  gunzip -c "$zo_in" >"$zo" && chmod +x "$zo"
fi
# CUDA 13's libraries (cuBLAS, cuRAND, NVRTC, the runtime) from PyTorch's wheels, where zo's
# dynamic loader looks.
if [ "$dev" != cpu ]; then
  nv=$("$py" -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null)/nvidia/cu13/lib
  export LD_LIBRARY_PATH=$nv:${LD_LIBRARY_PATH:-}
  nvidia-smi -L || true
fi
"$zo" --version

declare -a rows
row() { rows+=("$(printf '| %s | %s | %s |' "$1" "$2" "$3")"); }
fail=0

# 1. Sweeps: the self-check (logged at info level) and B3.
field() {
  "$py" -c "import json,sys
l = [json.loads(x) for x in open(sys.argv[1]) if x.startswith('{')]
f = lambda v: f'{v:.2f}' if isinstance(v, float) else str(v)
print(' / '.join(f(d.get(sys.argv[2])) for d in l if d.get('figure') == 'B3'))" "$1" "$2"
}
for spec in "opt-125m f32" "opt-125m bf16" "opt-125m f16" "opt-13b f16"; do
  set -- $spec
  [ "$dev" = cpu ] && [ "$1" = opt-13b ] && set -- opt-1.3b "$2"
  tag=b3-$1-$2
  timeout 240 "$zo" -v bench --figure b3 --device "$dev" --dtype "$2" --model "$1" \
    --repeats 5 --warmup 1 >"$out/$tag.jsonl" 2>"$out/$tag.log"
  rc=$?
  if [ $rc != 0 ]; then
    row "B3 $1 $2" "FAILED (exit $rc)" "$(tail -n 1 "$out/$tag.log")"
    fail=1
    continue
  fi
  native=$(field "$out/$tag.jsonl" native)
  check=$(grep -o 'native CUDA kernel[^"]*' "$out/$tag.log" | head -n 1)
  [ -z "$check" ] && check=$(grep -o 'the native CUDA kernel is not used.*' "$out/$tag.log" | head -n 1)
  row "B3 $1 $2: ms (1 / 2 terms), GB/s" \
    "$(field "$out/$tag.jsonl" median_ms) ms; $(field "$out/$tag.jsonl" gb_per_s) GB/s" \
    "native: $native; ${check:-no self-check line}"
  case $native in *False*|*false*) [ "$dev" != cpu ] && fail=1 ;; esac
done

# Device-to-device copy bandwidth (bytes read + written per second), the sweep's roof.
if [ "$dev" != cpu ]; then
  bw=$("$py" - <<'EOF' 2>&1
import torch
x = torch.empty(2 * 1024**3, dtype=torch.float16, device="cuda")  # 4 GiB
y = torch.empty_like(x)
for _ in range(3):
    y.copy_(x)
torch.cuda.synchronize()
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
ms = []
for _ in range(10):
    s.record(); y.copy_(x); e.record(); e.synchronize(); ms.append(s.elapsed_time(e))
ms.sort()
print(f"{2 * x.numel() * 2 / (ms[5] / 1e3) / 1e9:.0f} GB/s ({torch.cuda.get_device_name()})")
EOF
)
  row "device-to-device copy (torch)" "$bw" "the sweep's memory roof"
fi

# 2. Train on the device, replay on the CPU: the same sha256.
for dtype in f32 bf16 f16; do
  run=$out/train-$dtype
  rm -rf "$run" "$out/replay-$dtype"
  if ! timeout 240 "$zo" -v train --config configs/quickstart.toml --device "$dev" --dtype "$dtype" \
      --steps "$steps" --eval-every 0 --out "$run" >"$out/train-$dtype.log" 2>&1; then
    row "train $dtype on $dev" "FAILED" "$(tail -n 1 "$out/train-$dtype.log")"
    fail=1
    continue
  fi
  if ! "$zo" -v replay "$run" --device cpu --out "$out/replay-$dtype" >"$out/replay-$dtype.log" 2>&1; then
    row "replay $dtype on cpu" "FAILED" "$(tail -n 1 "$out/replay-$dtype.log")"
    fail=1
    continue
  fi
  # The device's forward against candle's ops on the CPU (the same op sequence): the first
  # step's two losses, from the same weights, batch and direction.
  ref=$out/cpu-candle-$dtype
  rm -rf "$ref"
  if "$zo" train --config configs/quickstart.toml --device cpu --candle-ops --dtype "$dtype" \
      --steps 1 --eval-every 0 --out "$ref" >"$ref.log" 2>&1; then
    cmp=$("$py" - "$run/metrics.jsonl" "$ref/metrics.jsonl" "$dtype" <<'EOF'
import json, sys
def first(path):
    for line in open(path):
        v = json.loads(line)
        if v.get("kind") == "step":
            return v
a, b = first(sys.argv[1]), first(sys.argv[2])
tol = 1e-4 if sys.argv[3] == "f32" else 1e-2
worst = max(abs(a[k] - b[k]) / max(abs(a[k]), abs(b[k]), 1e-30) for k in ("f_plus", "f_minus"))
verdict = "ok" if worst <= tol else "FAR"
print(f"{verdict}: relative {worst:.1e} (f+ {a['f_plus']:.6f} vs {b['f_plus']:.6f})")
EOF
)
    row "step 1 losses $dtype: $dev vs cpu --candle-ops" "$cmp" "within 1e-4 (f32), 1e-2 (16-bit)"
    case $cmp in ok*) ;; *) fail=1 ;; esac
  else
    row "step 1 losses $dtype on cpu --candle-ops" "FAILED" "$(tail -n 1 "$ref.log")"
    fail=1
  fi
  a=$(sha256sum "$run/final/model.safetensors" | cut -c1-16)
  b=$(sha256sum "$out/replay-$dtype/model.safetensors" | cut -c1-16)
  loss=$(grep -o 'training loss.*' "$out/train-$dtype.log" | tail -n 1)
  if [ "$a" = "$b" ]; then
    row "train $dtype on $dev, replay on cpu" "same sha256 $a" "${loss:-}"
  else
    row "train $dtype on $dev, replay on cpu" "DIFFERENT: $a vs $b" "${loss:-}"
    fail=1
  fi
done

# 2b. Evaluation on the device (a SQuAD-format generation through the KV cache, COPA-format
# scoring) against the same evaluation on the CPU under --candle-ops: the same generations,
# every candidate's score within 1e-4.
for task in squad copa; do
  data=$out/data-$task
  mkdir -p "$data"
  cp "tasks/$task/fixture.jsonl" "$data/train.jsonl"
  cp "tasks/$task/fixture.jsonl" "$data/validation.jsonl"
  ok=1
  for where in device cpu; do
    if [ $where = device ]; then set -- --set "model.device=\"$dev\""; else set -- --candle-ops; fi
    if ! timeout 240 "$zo" eval -q --model builtin:tiny-opt --set model.tokenizer=builtin:tiny \
        --task "$task" --data "$data" --split test --set task.max_new_tokens=16 "$@" \
        --predictions "$out/eval-$task-$where.jsonl" >/dev/null 2>"$out/eval-$task-$where.log"; then
      row "eval $task on $where" "FAILED" "$(tail -n 1 "$out/eval-$task-$where.log")"
      fail=1
      ok=0
    fi
  done
  [ $ok = 1 ] || continue
  cmp=$("$py" - "$out/eval-$task-device.jsonl" "$out/eval-$task-cpu.jsonl" <<'EOF'
import json, sys
rows = [[json.loads(l) for l in open(p)] for p in sys.argv[1:]]
worst, same, n = 0.0, 0, len(rows[0])
for a, b in zip(*rows):
    if "scores" in a:
        worst = max([worst] + [abs(x - y) for x, y in zip(a["scores"], b["scores"])])
    same += a.get("prediction") == b.get("prediction")
ok = len(rows[0]) == len(rows[1]) and worst <= 1e-4 and ("scores" in rows[0][0] or same == n)
print(f"{'ok' if ok else 'FAR'}: {same}/{n} predictions equal, max score difference {worst:.1e}")
EOF
)
  row "eval $task: $dev vs cpu --candle-ops" "$cmp" "generations equal, scores within 1e-4"
  case $cmp in ok*) ;; *) fail=1 ;; esac
done

# 3. The peer's sweep on the same device (MeZO: torch.normal + add, per parameter).
if [ "$dev" != cpu ]; then
  peer=$(timeout 300 "$py" docs/peer/mezo_torch_bench.py --device cuda --dtype float16 \
    --preset 1.3b --mode sweep --repeats 5 2>&1 | tail -n 3 | tr '\n' ' ')
  row "peer sweep, opt-1.3b f16 (mezo_torch_bench.py --mode sweep)" "${peer:0:200}" ""
fi

echo
echo "## zo GPU check ($dev; $(date -u +%Y-%m-%dT%H:%MZ))"
echo
echo "| check | result | notes |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
if [ $fail = 0 ]; then echo "gpu-check: all checks passed"; else echo "gpu-check: SOME CHECKS FAILED (logs in $out)"; fi
exit $fail
