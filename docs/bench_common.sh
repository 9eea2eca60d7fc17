# Sourced by the docs/bench_*.sh scripts: paths of zo and the peer, the output folder ($1), and a
# log line with the time and load average before each figure (the quiet-machine record).
set -u
OUT=$1; mkdir -p "$OUT"
ZO=/work/main/target/release/zo
PY=/tmp/peer-venv/bin/python
PEER=/work/shared/bench/mezo_torch_bench.py
cd /work/main
log() { echo "== $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg) :: $*" | tee -a "$OUT/log.txt"; }
