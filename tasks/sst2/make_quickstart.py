#!/usr/bin/env python3
"""Writes quickstart_train.jsonl (240 rows) and quickstart_dev.jsonl (200 rows): short movie
review sentences we made up, in GLUE SST-2's format (lower-cased, punctuation and clitics split
off by spaces, a trailing space; `{"sentence", "label", "idx"}` with 1 = positive), for the
quickstart to train on without downloading SST-2. Labels are balanced in each file; sentiment is
carried by clear words so a small model can learn it, with varied templates (two clauses, "but"
contrasts, negated praise / negated criticism) so it is not a single lookup.

Deterministic (random.Random(20240611)); plain CPython 3. Run: python3 tasks/sst2/make_quickstart.py
The two files share no sentence. `sentence` and the word lists are also imported by
crates/zo-models/assets/quickstart-opt/make_quickstart_opt.py (the quickstart model's corpus).
"""
import json
import os
import random

SUBJECTS = ["the film", "this movie", "the plot", "the acting", "the script", "the soundtrack",
            "the cast", "the ending", "the dialogue", "the direction", "the story", "the lead",
            "the cinematography", "the pacing", "this picture", "the director 's latest"]
POS_PRED = ["is a delight", "is wonderful", "shines", "is beautifully made", "is funny and moving",
            "is a joy to watch", "is brilliant", "is charming", "works wonderfully",
            "is fresh and clever", "is warm and touching", "is gripping", "is a small triumph",
            "is smart and heartfelt", "is genuinely moving", "is terrific"]
NEG_PRED = ["is a mess", "is dull", "falls flat", "is painfully boring", "is a waste of time",
            "is clumsy and tedious", "is awful", "never works", "is lifeless",
            "is stale and predictable", "is a chore to sit through", "is shallow",
            "is an embarrassment", "is tiresome", "is badly made", "is a disaster"]
POS_ADJ = ["charming", "lovely", "smart", "moving", "delightful", "funny", "gorgeous", "winning"]
NEG_ADJ = ["dreary", "clumsy", "tedious", "hollow", "ugly", "boring", "sloppy", "pointless"]
PREFIX = ["", "", "honestly , ", "from start to finish , ", "in the end , ", "frankly , ",
          "all told , "]


def clause(rng, positive):
    return f"{rng.choice(SUBJECTS)} {rng.choice(POS_PRED if positive else NEG_PRED)}"


def sentence(rng, positive):
    kind = rng.randrange(6)
    if kind <= 1:
        s = f"{rng.choice(PREFIX)}{clause(rng, positive)} ."
    elif kind == 2:
        s = f"{clause(rng, positive)} , and {clause(rng, positive)} ."
    elif kind == 3:
        # The verdict comes after "but": the second clause decides the label.
        s = f"{clause(rng, not positive)} , but {clause(rng, positive)} ."
    elif kind == 4:
        adj = rng.choice(POS_ADJ if positive else NEG_ADJ)
        art = "an" if adj[0] in "aeiou" else "a"
        s = f"it 's {art} {adj} {rng.choice(['movie', 'film', 'little picture', 'comedy', 'drama'])} ."
    else:
        # Negated opposite: "is n't dull" (positive) / "is n't charming" (negative).
        adj = rng.choice(NEG_ADJ if positive else POS_ADJ)
        s = f"{rng.choice(SUBJECTS)} is n't {adj} at all ."
    return s + " "


def build(rng, n, seen):
    rows = []
    while len(rows) < n:
        label = len(rows) % 2
        s = sentence(rng, bool(label))
        if s in seen:
            continue
        seen.add(s)
        rows.append({"sentence": s, "label": label, "idx": len(rows)})
    rng.shuffle(rows)
    for i, r in enumerate(rows):
        r["idx"] = i
    return rows


def write(path, rows):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.replace(path + ".tmp", path)


N_TRAIN, N_DEV = 240, 200


def main():
    rng = random.Random(20240611)
    seen = set()
    here = os.path.dirname(os.path.abspath(__file__))
    write(os.path.join(here, "quickstart_train.jsonl"), build(rng, N_TRAIN, seen))
    write(os.path.join(here, "quickstart_dev.jsonl"), build(rng, N_DEV, seen))
    print(f"wrote {N_TRAIN} + {N_DEV} rows")


if __name__ == "__main__":
    main()
