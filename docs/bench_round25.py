#!/usr/bin/env python3
"""Summary of docs/bench_round25.sh's output folder: docs/bench_round10.py's table of the opt-125m
figures (zo against the peer, per round and of the medians), then the sweeps (B3 one-term and
two-term, the peer's sweep) and the FMA peak read each round. Every number is read from the files.
Standard library only.

Usage: python3 docs/bench_round25.py OUTDIR
"""
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_round10  # noqa: E402


def b3(path, terms):
    """zo's B3 median milliseconds with `terms` terms."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            if line.startswith("{"):
                d = json.loads(line)
                if d.get("figure") == "B3" and d.get("terms") == terms:
                    return d["median_ms"]
    return None


def main():
    out = sys.argv[1]
    j = lambda name: os.path.join(out, name)
    with open(j("cpu.txt")) as f:
        print("".join(l for l in f if not l.startswith("flags")).strip())
    bench_round10.main()
    rs = bench_round10.rounds(out)
    one = [b3(j(f"zo-b3-{r}.json"), 1) for r in rs]
    two = [b3(j(f"zo-b3-{r}.json"), 2) for r in rs]
    peer = [bench_round10.peer(j(f"peer-sweep-{r}.json"), "sweep") for r in rs]
    fmt = lambda xs, f: " / ".join("–" if x is None else f % x for x in xs)
    print("B3 one-term ms:", fmt(one, "%.1f"), "| two-term ms:", fmt(two, "%.1f"),
          "| two / one:", fmt([b / a if a and b else None for a, b in zip(one, two)], "%.2f"),
          "(target <= 1.3)")
    print("peer sweep ms:", fmt([p * 1e3 if p else None for p in peer], "%.1f"),
          "| zo one-term / peer:", fmt([a / (p * 1e3) if a and p else None
                                        for a, p in zip(one, peer)], "%.3f"))
    for r in rs:
        path = j(f"peak-{r}.txt")
        if os.path.exists(path):
            with open(path) as f:
                print(f"FMA peak round {r}:", " | ".join(l.strip() for l in f if re.search(r"gflops", l)))


if __name__ == "__main__":
    main()
