"""Medians of docs/bench_round24.sh's output: python3 docs/bench_round24.py OUTDIR."""
import json
import statistics
import sys
from collections import defaultdict

out = sys.argv[1]


def rows(name):
    with open(f"{out}/{name}") as f:
        for line in f:
            r, v, tag, js = line.split(" ", 3)
            yield int(r), v, tag, json.loads(js)


def table(title, groups, unit):
    print(f"\n{title} ({unit}; medians over rounds, per round old/new)")
    for key in sorted(groups):
        old, new = groups[key]["old"], groups[key]["new"]
        mo, mn = statistics.median(old), statistics.median(new)
        print(f"{key}: old {mo:.3f} new {mn:.3f} new/old {mn / mo:.2f}   rounds old {old} new {new}")


g = defaultdict(lambda: {"old": [], "new": []})
for _, v, _, d in rows("sgemm.txt"):
    n, k, o = d["n"], d["k"], d["o"]
    # GB/s of the weights at the median sample: 4·k·o bytes per 2·n·k·o FLOP.
    g[f"{n:>2} x {k} -> {o:<5}"][v].append(round(d["best_gflops"] * 2 / n, 1))
table("Products, weights from memory", g, "GB/s of W read, higher is better")

g = defaultdict(lambda: {"old": [], "new": []})
for _, v, tag, d in rows("gb.txt"):
    key = f"decode {tag}" if tag != "group" else "group of 8 prompts (128-512), s per prompt"
    val = d["decode_ms_per_step"] if tag != "group" else d["per_prompt_s"]
    g[key][v].append(val)
table("Greedy decoding", g, "ms per step; group: s per prompt")

g = defaultdict(lambda: {"old": [], "new": []})
for _, v, tag, d in rows("eb.txt"):
    g[f"{tag} shared"][v].append(d["shared_s"])
table("Candidate scoring", g, "s")
