#!/usr/bin/env bash
# The image path under `mpirun -np 2` (not split: every rank computes each batch whole, rank 0
# alone evaluates and writes): a tiny ResNet on synthetic CIFAR-10 binary batches, trained in
# one process and on 2 ranks; final/ and best/ weights, results.json and the test predictions
# must be the same. Needs a `zo` built with `--features mpi` and OpenMPI.
# Usage: bash docs/mpi_vision.sh [path/to/zo]
. "$(dirname "$0")/mpi_common.sh"
# CIFAR-10 binary batches: label i % 10, each channel a class level plus noise.
python3 - "$tmp/cifar" <<'PY'
import os, random, sys
d = sys.argv[1]
os.makedirs(d)
rnd = random.Random(12345)
def write(name, n):
    out = bytearray()
    for i in range(n):
        label = i % 10
        out.append(label)
        for c in range(3):
            level = (label * 25 + c * 60) % 256
            out.extend(min(255, max(0, level + rnd.randint(-32, 31))) for _ in range(1024))
    open(os.path.join(d, name), "wb").write(out)
for k in range(1, 6):
    write(f"data_batch_{k}.bin", 12)
write("test_batch.bin", 30)
PY
args="train -q --set model.kind=resnet --set model.source=builtin:tiny-resnet --set task.name=cifar10
  --set task.data=$tmp/cifar --set task.num_train=40 --set task.num_dev=20 --set task.num_eval=30
  --set optimizer.method=as2p --set optimizer.eta_b=5 --set train.steps=10 --set train.batch_size=8
  --set train.eval_every=5 --set train.checkpoint_every=5"
"$zo" $args --out "$tmp/one" >/dev/null
$mpi "$zo" $args --out "$tmp/two" >/dev/null
for f in $(cd "$tmp/one" && ls final/* best/* results.json predictions_test.jsonl); do
  cmp "$tmp/one/$f" "$tmp/two/$f" || { echo "resnet: $f differs between 1 and 2 ranks"; exit 1; }
done
echo "resnet: 1 and 2 ranks give the same final/, best/, results and test predictions"
