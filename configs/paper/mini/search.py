#!/usr/bin/env python3
"""The hyper-parameter search of the miniature Table 6 (`zo reproduce --table 6 --mini`).

Every method (GA cosine, GA constant, STP, AS2P) is tuned on its own grid, as the paper tunes
each method: each candidate is trained with `zo train` from the method's mini cell config
(configs/paper/mini/table6/, so the same model, rows, steps and batch size as the table) under
each search seed, and scored by its final dev loss (the last evaluation of the run) averaged
over the search seeds. The search seeds (101, 102) are not the table's run seeds (1, 2, 3), so
the table is not measured on the runs that chose its hyper-parameters. Lowest mean dev loss
wins; a run that fails (e.g. a non-finite loss) scores infinity.

Writes configs/paper/mini/search.json (every candidate's scores and the chosen values) and
configs/paper/mini/search.md (the same as tables); configs/paper/make_configs.py reads the
chosen values from search.json into the mini cell configs. Run from the repository root:

    cargo build --release
    python3 configs/paper/mini/search.py --zo target/release/zo
    python3 configs/paper/make_configs.py

Runs go to runs/mini-search/ (kept: a re-run reuses finished candidates).
"""
import argparse
import itertools
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CELLS = os.path.join(HERE, "table6")
SEEDS = [101, 102]

# method cell -> {key: candidate values}; the grid is the product of the lists.
GRIDS = {
    "ga": {"lr": [3e-4, 1e-3, 3e-3], "rho": [1e-3, 1e-2]},
    "ga-constant": {"lr": [1e-4, 3e-4, 1e-3, 3e-3], "rho": [1e-3, 1e-2]},
    "stp": {"lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]},
    "as2p": {"eta_b": [0.2, 0.5, 1.0, 2.0, 5.0], "rho": [1e-3, 1e-2]},
}


def final_dev_loss(run_dir):
    """The dev loss of the run's last evaluation, or None if the run did not finish."""
    if not os.path.isfile(os.path.join(run_dir, "results.json")):
        return None
    last = None
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            if row.get("kind") == "eval" and row.get("dev_loss") is not None:
                last = row["dev_loss"]
    return last


def run(zo, cell, values, seed, out_root, steps):
    name = "-".join(f"{k}{v:g}" for k, v in values.items())
    out = os.path.join(out_root, f"{cell}-{name}-s{seed}")
    loss = final_dev_loss(out)
    if loss is not None:
        return loss
    if os.path.exists(out):
        subprocess.run(["rm", "-rf", out], check=True)
    cmd = [zo, "-q", "train", "--config", os.path.join(CELLS, f"sst2-{cell}.toml"),
           "--seed", str(seed), "--out", out]
    for k, v in values.items():
        cmd += ["--set", f"optimizer.{k}={v!r}"]
    if steps:
        cmd += ["--steps", str(steps), "--eval-every", str(max(1, steps // 5)),
                "--checkpoint-every", str(steps)]
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        print(f"  {cell} {values} seed {seed}: failed: {p.stderr.strip()}", file=sys.stderr)
        return math.inf
    loss = final_dev_loss(out)
    return math.inf if loss is None else loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zo", default="zo", help="the zo binary")
    ap.add_argument("--out", default="runs/mini-search", help="where the runs go")
    ap.add_argument("--steps", type=int, default=0, help="steps per run (default: the cell's)")
    ap.add_argument("--only", default="", help="comma-separated cells to search (default: all)")
    a = ap.parse_args()
    only = [c for c in a.only.split(",") if c]
    path = os.path.join(HERE, "search.json")
    result = {"seeds": SEEDS, "score": "mean final dev loss over the seeds", "methods": {}}
    if os.path.isfile(path):
        with open(path) as f:
            result["methods"] = json.load(f).get("methods", {})
    for cell, grid in GRIDS.items():
        if only and cell not in only:
            continue
        keys = list(grid)
        rows = []
        for combo in itertools.product(*(grid[k] for k in keys)):
            values = dict(zip(keys, combo))
            losses = [run(a.zo, cell, values, s, a.out, a.steps) for s in SEEDS]
            mean = sum(losses) / len(losses)
            rows.append({"values": values, "dev_loss": losses, "mean": mean})
            print(f"{cell:12s} {values} dev loss {mean:.4f}", file=sys.stderr)
        best = min(rows, key=lambda r: r["mean"])
        result["methods"][cell] = {"grid": grid, "candidates": rows, "chosen": best["values"]}
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    write_markdown(result)


def write_markdown(result):
    lines = [
        "# Hyper-parameter search of the miniature Table 6",
        "",
        "Written by configs/paper/mini/search.py (its docstring says how); the chosen values",
        "(**bold**) are the mini cell configs' (configs/paper/make_configs.py). Score: "
        f"{result['score']} (seeds {', '.join(map(str, result['seeds']))}); lower is better.",
        "Each run: the method's mini cell config (builtin:quickstart-opt, the built-in rows,",
        "its steps and batch size) with the candidate's values; dev loss of the last evaluation.",
        "",
    ]
    for cell, m in result["methods"].items():
        keys = list(m["grid"])
        lines += [f"## {cell}", "", "| " + " | ".join(keys) + " | dev loss per seed | mean |",
                  "|" + "---:|" * (len(keys) + 2)]
        for r in m["candidates"]:
            bold = r["values"] == m["chosen"]
            cells = [f"{r['values'][k]:g}" for k in keys]
            cells += [", ".join(f"{x:.4f}" for x in r["dev_loss"]), f"{r['mean']:.4f}"]
            if bold:
                cells = [f"**{c}**" for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    with open(os.path.join(HERE, "search.md.tmp"), "w") as f:
        f.write("\n".join(lines))
    os.replace(os.path.join(HERE, "search.md.tmp"), os.path.join(HERE, "search.md"))


if __name__ == "__main__":
    main()
