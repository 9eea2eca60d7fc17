# Sourced by the docs/bench_*.sh scripts: paths of zo and the peer, the output folder ($1), and a
# log line with the time and load average before each figure (the quiet-machine record).
# Paths come from the environment, with defaults relative to this checkout:
#   ZO    the zo binary          (default: target/release/zo of this checkout)
#   PY    the peer's Python      (default: python3; a venv with docs/peer/requirements-lock.txt)
#   PEER  the peer's script      (default: docs/peer/mezo_torch_bench.py of this checkout)
set -u
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ZO=${ZO:-$ROOT/target/release/zo}
PY=${PY:-python3}
PEER=${PEER:-$ROOT/docs/peer/mezo_torch_bench.py}
cd "$ROOT"
log() { echo "== $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg) :: $*" | tee -a "$OUT/log.txt"; }
