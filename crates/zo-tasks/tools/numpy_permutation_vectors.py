#!/usr/bin/env python3
"""More numpy legacy-permutation vectors than docs/PROTOCOL.md 1.7 lists, for
tests/numpy_vectors.rs: `np.random.seed(seed); np.random.permutation(n)` for several seeds and
sizes (powers of two and 2^k+1 stress numpy's bit-mask rejection). Small n: the whole
permutation; large n: the first 20 entries and sum(i * p[i]) over the whole permutation.
Also `np.random.seed(s); np.random.randint(10**9)` x5 (the ZO step-seed draw).

Needs numpy (run with a venv that has it). Writes tests/data/numpy_vectors.json atomically.
"""
import json
import os

import numpy as np

out = {"numpy": np.__version__, "perms": [], "randint": []}
for seed in [0, 1, 42, 1234, 2**32 - 1]:
    for n in [1, 2, 3, 7, 10, 100, 277, 1000, 4096, 4097, 65537, 100730]:
        np.random.seed(seed)
        p = np.random.permutation(n).tolist()
        entry = {"seed": seed, "n": n, "head": p[:20],
                 "weighted_sum": sum(i * v for i, v in enumerate(p))}
        if n <= 1000:
            entry["full"] = p
        out["perms"].append(entry)
    np.random.seed(seed)
    out["randint"].append({"seed": seed, "draws": [int(np.random.randint(1000000000)) for _ in range(5)]})

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "numpy_vectors.json")
with open(path + ".tmp", "w") as f:
    json.dump(out, f, separators=(",", ":"))
    f.write("\n")
os.replace(path + ".tmp", path)
print("wrote", path, "numpy", np.__version__)
