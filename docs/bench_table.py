#!/usr/bin/env python3
"""Print the side-by-side table of one bench round (docs/BENCH.md) from its output folder.

Usage: python3 docs/bench_table.py OUTDIR

OUTDIR is what docs/bench_side_by_side.sh or docs/bench_round5.sh wrote: zo's JSON lines
(zo_*.json), the peer's output (peer_*.txt, last line is its JSON) and log.txt. Standard library
only. Every number printed is read from those files; ratios are zo / peer of the medians.
"""
import glob
import json
import os
import sys

# zo bench's threshold (crates/zo-runner/src/bench/measure.rs, PROBE_MIN_RATIO), applied to the
# peer's probes too: below it, the 2-thread figure was not ~2x the 1-thread one.
PROBE_MIN_RATIO = 1.6


def zo_lines(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def peer(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [l for l in f if l.strip().startswith("{")]
    return json.loads(lines[-1]) if lines else None


def probes(lines):
    return [p for p in lines if p.get("figure") == "probe"]


def peer_ratio(q):
    """2-thread / 1-thread GFLOP/s of one of the peer's probes."""
    return q["gflops_2t"] / q["gflops_1t"]


def peer_contended(p):
    """Whether either of the peer's probes around its figure fell below PROBE_MIN_RATIO."""
    return any(peer_ratio(q) < PROBE_MIN_RATIO for q in (p["probe_before"], p["probe_after"]))


def fmt_peer_probe(q):
    r = peer_ratio(q)
    flag = " CONTENDED" if r < PROBE_MIN_RATIO else ""
    return f"{q['gflops_2t']:.0f}/{q['gflops_1t']:.0f} ({r:.2f}{flag})"


def fmt_probe(ps):
    if not ps:
        return "-"
    return ", ".join(f"{p['gflops_nt']:.0f}/{p['gflops_1t']:.0f} ({p['ratio']:.2f}"
                     + (" CONTENDED" if p.get("contended") else "") + ")" for p in ps)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench_table.py OUTDIR")
    d = sys.argv[1]
    rows = []
    probe_notes = []
    # (figure, zo file, peer file, peer key, row name, zo text, peer text)
    timed = [
        ("B1", "zo_b1_T{t}.json", "peer_fwd_T{t}.txt", "forward",
         lambda r, t: f"B1 {r['loss']} T{t}",
         lambda r: f"{r['median_s']:.3f} s ({r['gflops_per_s']:.0f} GFLOP/s, CPU {r['cpu_s_per_call']:.2f} s)",
         lambda p: f"{p['median_s']:.3f} s ({p['gflops_per_s']:.0f} GFLOP/s)"),
        ("B2", "zo_b2_T{t}.json", "peer_step_T{t}.txt", "mezo_step",
         lambda r, t: f"B2 {r['method']} {r['loss']} T{t}",
         lambda r: f"{r['median_s']:.3f} s (CPU {r['cpu_s_per_call']:.2f} s, {r['sweeps_per_step']} sweeps)",
         lambda p: f"{p['median_s']:.3f} s (MeZO step)"),
    ]
    for t in (64, 128):
        for fig, zf, pf_name, key, name, ztext, ptext in timed:
            zo = zo_lines(f"{d}/{zf.format(t=t)}")
            pf = peer(f"{d}/{pf_name.format(t=t)}")
            if not (zo and pf):
                continue
            pm = pf[key]["median_s"]
            note = " (peer contended)" if peer_contended(pf) else ""
            for r in zo:
                if r.get("figure") == fig:
                    rows.append((name(r, t), ztext(r), ptext(pf[key]) + note, r["median_s"] / pm))
            probe_notes.append((f"{fig} T{t}", fmt_probe(probes(zo)), pf["probe_before"], pf["probe_after"]))
    psw = peer(f"{d}/peer_sweep.txt")
    for name in sorted(glob.glob(f"{d}/zo_b3*.json")):
        zb3 = zo_lines(name)
        for r in zb3:
            if r.get("figure") != "B3":
                continue
            pm = psw["sweep"]["median_s"] if psw else None
            note = " (peer contended)" if psw and peer_contended(psw) else ""
            rows.append((f"B3 sweep, {r['terms']} term(s) ({os.path.basename(name)})",
                         f"{r['median_ms']:.1f} ms ({r['gb_per_s']:.1f} GB/s)",
                         f"{pm * 1e3:.1f} ms{note}" if pm and r["terms"] == 1 else "-",
                         r["median_s"] / pm if pm and r["terms"] == 1 else None))
        if psw:
            probe_notes.append((f"B3 {os.path.basename(name)}", fmt_probe(probes(zb3)), psw["probe_before"], psw["probe_after"]))
    for r in zo_lines(f"{d}/zo_b4.json"):
        if r.get("figure") == "B4":
            ps = peer(f"{d}/peer_step_T64.txt")
            prss = ps["peak_rss_mib"] / 1024 if ps else None
            rows.append((f"B4 peak RSS, {r['method']} {r['loss']}", f"{r['peak_rss_gib']:.3f} GiB",
                         f"{prss:.2f} GiB (step)" if prss else "-", r["peak_rss_gib"] / prss if prss else None))
    for r in zo_lines(f"{d}/zo_b5.json"):
        if r.get("figure") == "B5":
            rows.append((f"B5 sweeps per step, {r['method']}", str(r["sweeps_per_step"]), str(r["mezo_sweeps_per_step"]), None))

    print("| figure | zo (median) | peer (median) | zo / peer |")
    print("|---|---|---|---|")
    for name, z, p, ratio in rows:
        print(f"| {name} | {z} | {p} | {'' if ratio is None else f'{ratio:.2f}'} |")
    print()
    print("Quiet-machine check (GEMM probe GFLOP/s, 2 threads / 1 thread (ratio)):")
    for name, z, pb, pa in probe_notes:
        print(f"- {name}: zo {z}; peer before {fmt_peer_probe(pb)}, after {fmt_peer_probe(pa)}")
    log = f"{d}/log.txt"
    if os.path.exists(log):
        with open(log) as f:
            marks = [l for l in f if l.startswith("== ")]
        if marks:
            # "== HH:MM:SS load 1m 5m 15m :: what"
            loads = [l.split("load ")[1].split(" ")[0] for l in marks]
            lo, hi = min(loads, key=float), max(loads, key=float)
            print(f"- window {marks[0].split(' ')[1]}–{marks[-1].split(' ')[1]}, 1-min load average {lo}–{hi}")


if __name__ == "__main__":
    main()
