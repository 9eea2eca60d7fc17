#!/usr/bin/env python3
"""Independent reference for tests/render_reference.rs: renders every tasks/<task>/fixture.jsonl
row with a transcription of MeZO's templates (`large_models/templates.py`: SST2Template,
RTETemplate, CopaTemplate, ReCoRDTemplateGPT3, SQuADv2Template, DROPTemplate), sample building
(`tasks.py`) and `encode_prompt` (`utils.py`, no demonstrations), run by CPython so the string
operations (`strip`, `rstrip`, `lstrip`, `lower`, `split(" ")`, `replace`) are Python's own.
Token counts use the tests' toy tokenizer: BOS + one id per UTF-8 byte.

Plain CPython 3. Writes tests/data/render_reference.json atomically.
Run: python3 tools/render_reference.py
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
TASKS = os.path.join(HERE, "..", "..", "..", "tasks")


def encode(text):  # toy tokenizer.encode: BOS + bytes
    return [0] + [b + 4 for b in text.encode("utf-8")]


def sst2(row):
    verb = {0: "terrible", 1: "great"}
    s = row["sentence"].strip()
    return dict(candidates=[0, 1], correct=row["label"],
                encode=f"{s} It was", verbalize=lambda c: f"{s} It was {verb[c]}")


def rte(row):
    verb = {0: "Yes", 1: "No"}
    p, h = row["premise"], row["hypothesis"]
    return dict(candidates=[0, 1], correct=row["label"],
                encode=f"{p}\nDoes this mean that \"{h}\" is true? Yes or No?\n",
                verbalize=lambda c: f"{p}\nDoes this mean that \"{h}\" is true? Yes or No?\n{verb[c]}")


def copa(row):
    def get_prompt():
        premise = row["premise"].rstrip()
        if premise.endswith("."):
            premise = premise[:-1]
        if row["question"] == "effect":
            conjunction = " so "
        elif row["question"] == "cause":
            conjunction = " because "
        else:
            raise NotImplementedError
        return premise + conjunction

    def capitalize(c):
        words = c.split(" ")
        if words[0] != "I":
            words[0] = words[0].lower()
        return " ".join(words)

    cands = [row["choice1"], row["choice2"]]
    return dict(candidates=cands, correct=row["choice1"] if row["label"] == 0 else row["choice2"],
                encode=get_prompt(), verbalize=lambda c: get_prompt() + capitalize(c))


def record(row):
    passage = row["passage"].replace("@highlight\n", "- ")
    return dict(candidates=row["entities"], correct=row["answers"], encode=f"{passage}\n-",
                verbalize=lambda c: f"{passage}\n- " + row["query"].replace(
                    "@placeholder", c[0] if isinstance(c, list) else c))


def squad(row):
    answers = row["answers"]["text"]
    assert len(answers) > 0
    q = row["question"].strip()
    enc = f"Title: {row['title']}\nContext: {row['context']}\nQuestion: {q}\nAnswer:"
    return dict(candidates=None, correct=answers, encode=enc,
                verbalize=lambda c: f"{enc} {answers[0]}\n")


def drop(row):
    answers = row["answers_spans"]["spans"]
    assert len(answers) > 0
    q = row["question"].strip()
    enc = f"Passage: {row['passage']}\nQuestion: {q}\nAnswer:"
    return dict(candidates=None, correct=answers, encode=enc,
                verbalize=lambda c: f"{enc} {answers[0]}\n")


def encode_prompt(s, generation, with_gold):
    """utils.encode_prompt with train_samples=[]; returns (finals, option_lens)."""
    train_prompts = "".strip()
    unverbalized = s["encode"].strip(' ')
    if not generation:
        verbalized = [s["verbalize"](c).strip(' ') for c in s["candidates"]]
        base = len(encode(unverbalized))
        option_lens = [len(encode(v)) - base for v in verbalized]
        finals = [(train_prompts + "\n\n" + v).lstrip().strip(' ') for v in verbalized]
    elif with_gold:
        verbalized = [s["verbalize"](s["correct"])]
        base = len(encode(unverbalized))
        option_lens = [len(encode(v)) - base for v in verbalized]
        finals = [(train_prompts + "\n\n" + v).lstrip().strip(' ') for v in verbalized]
    else:
        option_lens = [0]
        finals = [(train_prompts + "\n\n" + unverbalized).lstrip().strip(' ')]
    return unverbalized, finals, option_lens


out = {}
for name, build in [("sst2", sst2), ("rte", rte), ("copa", copa), ("record", record),
                    ("squad", squad), ("drop", drop)]:
    rows = []
    with open(os.path.join(TASKS, name, "fixture.jsonl"), encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            s = build(json.loads(line))
            generation = s["candidates"] is None
            unverb, finals, lens = encode_prompt(s, generation, with_gold=False)
            _, train_finals, train_lens = encode_prompt(s, generation, with_gold=True)
            cands = s["candidates"]
            if generation:
                correct, train_id = [], 0
            elif isinstance(s["correct"], list):
                correct = [cands.index(a) for a in s["correct"]]
                train_id = cands.index(s["correct"][0])
            else:
                correct = [cands.index(s["correct"])]
                train_id = correct[0]
            if not generation:  # the LM training sequence is the correct candidate's
                train_finals, train_lens = [train_finals[train_id]], [train_lens[train_id]]
            rows.append(dict(unverbalized=unverb, finals=finals, option_lens=lens,
                             correct=correct, train_id=train_id, train_final=train_finals[0],
                             train_option_len=train_lens[0]))
    out[name] = rows

path = os.path.join(HERE, "..", "tests", "data", "render_reference.json")
with open(path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False, indent=1)
    f.write("\n")
os.replace(path + ".tmp", path)
print("wrote", path, {k: len(v) for k, v in out.items()})
