#!/usr/bin/env python3
"""Summary of docs/bench_round10.sh's output folder: per figure and round, zo's and the peer's
median seconds and their ratio, then the ratio of the medians over the rounds. Every number is
read from the files; the targets are issues 17 and 20's. Standard library only.

Usage: python3 docs/bench_round10.py OUTDIR
"""
import glob
import json
import os
import re
import statistics
import sys


def zo(path, **match):
    """Median seconds of the zo bench JSON line whose fields equal `match`."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        for line in f:
            if not line.startswith("{"):
                continue
            d = json.loads(line)
            if all(d.get(k) == v for k, v in match.items()):
                return d["median_s"]
    return None


def peer(path, key):
    """Median seconds under `key` (forward / step) of the peer's last JSON line."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [l for l in f if l.startswith("{")]
    if not lines:
        return None
    return json.loads(lines[-1]).get(key, {}).get("median_s")


def rounds(out):
    got = {int(m.group(1)) for p in glob.glob(os.path.join(out, "zo-*-*.json"))
           if (m := re.search(r"-(\d+)\.json$", p))}
    return sorted(got)


def main():
    out = sys.argv[1]
    rs = rounds(out)
    j = lambda name: os.path.join(out, name)
    figures = [
        # (label, zo (file, match), peer (file, key), target)
        ("B1 full LM, f32", ("zo-b1-f32-{r}.json", dict(figure="B1", loss="full_lm")),
         ("peer-fwd-float32-{r}.json", "forward"), "<= 0.8"),
        ("B1 task loss, f32", ("zo-b1-f32-{r}.json", dict(figure="B1", loss="task")),
         ("peer-fwd-float32-{r}.json", "forward"), "<= 0.55"),
        ("B2 GA step (task loss) / MeZO step, f32", ("zo-b2-f32-{r}.json", dict(figure="B2", method="ga")),
         ("peer-step-float32-{r}.json", "mezo_step"), "<= 0.25"),
        ("B1 full LM, bf16", ("zo-b1-bf16-{r}.json", dict(figure="B1", loss="full_lm")),
         ("peer-fwd-bfloat16-{r}.json", "forward"), "<= 0.5"),
        ("B2 GA step (task loss) / MeZO step, bf16", ("zo-b2-bf16-{r}.json", dict(figure="B2", method="ga")),
         ("peer-step-bfloat16-{r}.json", "mezo_step"), "<= 0.5"),
        ("ResNet-18 forward", ("zo-r18-b1-{r}.json", dict(figure="B1", classes=10)),
         ("peer-r18-fwd-{r}.json", "forward"), "<= 0.7"),
        ("ResNet-18 GA step / MeZO step", ("zo-r18-b2-{r}.json", dict(figure="B2", classes=10, method="ga")),
         ("peer-r18-step-{r}.json", "step"), "<= 0.6"),
        ("ResNet-50 forward", ("zo-r50-b1-{r}.json", dict(figure="B1", classes=10)),
         ("peer-r50-fwd-{r}.json", "forward"), "<= 0.5"),
        ("ResNet-50 GA step / MeZO step", ("zo-r50-b2-{r}.json", dict(figure="B2", classes=10, method="ga")),
         ("peer-r50-step-{r}.json", "step"), "<= 0.45"),
    ]
    print(f"rounds: {rs}")
    print("| figure | zo s (per round) | peer s (per round) | zo / peer (per round) | of the medians | target |")
    print("|---|---|---|---|---|---|")
    for label, (zf, zm), (pf, pk), target in figures:
        zs = [zo(j(zf.format(r=r)), **zm) for r in rs]
        ps = [peer(j(pf.format(r=r)), pk) for r in rs]
        ratios = [z / p if z and p else None for z, p in zip(zs, ps)]
        fmt = lambda xs, f: " / ".join("–" if x is None else f % x for x in xs)
        zv = [z for z in zs if z]
        pv = [p for p in ps if p]
        of_med = statistics.median(zv) / statistics.median(pv) if zv and pv else None
        print(f"| {label} | {fmt(zs, '%.3f')} | {fmt(ps, '%.3f')} | {fmt(ratios, '%.2f')} | "
              f"{'–' if of_med is None else '%.2f' % of_med} | {target} |")
    # zo's own bf16 gain over f32 (B1 full LM), per round.
    f32 = [zo(j(f"zo-b1-f32-{r}.json"), figure="B1", loss="full_lm") for r in rs]
    bf = [zo(j(f"zo-b1-bf16-{r}.json"), figure="B1", loss="full_lm") for r in rs]
    print("zo B1 full LM f32 / bf16 per round:",
          " / ".join("%.2f" % (a / b) if a and b else "–" for a, b in zip(f32, bf)), "(target >= 2.5 on AMX)")


if __name__ == "__main__":
    main()
