#!/usr/bin/env python3
"""Import circles between the modules of each crate: exit 1 (listing them) if there is one.

For every crate under crates/, each source file is a module path (`src/pipeline/vision.rs` is
`pipeline::vision`). Each `crate::…`, `super::…` and `self::…` path in a file is resolved to
the longest module path it names. An edge a → b is then lifted to the two children of their
lowest common ancestor that hold a and b (so `settings` → `pipeline::vision` is the edge
`settings` → `pipeline` among the crate's top-level modules, and `pipeline::vision` →
`pipeline::model` an edge between siblings of `pipeline`). A cycle among siblings is an import
circle. Paths inside string literals and comments are ignored. Standard library only.

Usage: python3 docs/tools/module_cycles.py [REPO_ROOT]
"""
import os
import re
import sys

PATH_RE = re.compile(r"\b(crate|super|self)::")


def strip_comments_and_strings(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return text


def module_path(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def split_top(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def expand(rest):
    """`a::b::{c, d::e}` → [[a, b, c], [a, b, d, e]] (first identifiers only)."""
    out = []
    m = re.match(r"((?:[A-Za-z_]\w*::)*)(\{)?", rest)
    prefix = [p for p in m.group(1).split("::") if p]
    if m.group(2):
        depth, i = 0, m.end() - 1
        for j in range(i, len(rest)):
            depth += rest[j] == "{"
            depth -= rest[j] == "}"
            if depth == 0:
                break
        for part in split_top(rest[i + 1 : j]):
            out += [prefix + sub for sub in expand(part)]
    else:
        ident = re.match(r"[A-Za-z_]\w*", rest[m.end() :])
        out.append(prefix + ([ident.group(0)] if ident else []))
    return out


def crate_edges(src):
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(root, n)
                files[module_path(src, p)] = p
    modules = set(files)
    edges = set()
    for mod, path in files.items():
        is_dir_mod = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs")
        text = strip_comments_and_strings(open(path, encoding="utf-8").read())
        for m in PATH_RE.finditer(text):
            kind, rest = m.group(1), text[m.end() :]
            base = {"crate": (), "self": mod, "super": mod if is_dir_mod else mod[:-1]}[kind]
            if kind == "super" and is_dir_mod:
                base = mod[:-1]
            for parts in expand(rest):
                target = tuple(base) + tuple(parts)
                while target and target not in modules:
                    target = target[:-1]
                if target and target != mod:
                    edges.add((mod, target))
    return modules, edges


def lift(a, b):
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    if k == len(a) or k == len(b):
        return None  # one contains the other
    return a[: k + 1], b[: k + 1]


def cycles(edges):
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    found, state, stack = [], {}, []

    def dfs(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                found.append(stack[stack.index(v) :] + [v])
            elif v not in state:
                dfs(v)
        stack.pop()
        state[u] = 2

    for u in sorted(graph):
        if u not in state:
            dfs(u)
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    bad = 0
    crates = sorted(os.listdir(os.path.join(root, "crates")))
    for c in crates:
        src = os.path.join(root, "crates", c, "src")
        if not os.path.isdir(src):
            continue
        modules, edges = crate_edges(src)
        lifted = {e for e in (lift(a, b) for a, b in edges) if e}
        for cyc in cycles(lifted):
            bad += 1
            print(f"{c}: import circle: " + " → ".join("::".join(m) for m in cyc))
        print(f"{c}: {len(modules)} modules, {len(lifted)} module dependencies", file=sys.stderr)
    if bad:
        sys.exit(1)
    print("no import circles between modules")


if __name__ == "__main__":
    main()
