#!/usr/bin/env python3
"""Test vectors made by MeZO's own code for tests/icl_reference.rs: in-context prompts, the
demonstration sets MeZO draws, left truncation under a small max_length (with generation
budgets), and the prompts of the non-differentiable objective.

MeZO's `large_models` modules are imported as they are, from a checkout given on the command
line (nothing of them is copied here): `tasks.py` (Dataset classes: `build_sample`,
`sample_train_sets`, `sample_subset`), `templates.py` and `utils.py` (`encode_prompt`). The
rows are the repository's fixtures (tasks/<task>/fixture.jsonl), used both as the train pool
and as the evaluation examples. The tokenizer is the tests' toy tokenizer (BOS id 0, then one
id per UTF-8 byte + 4), so the ids spell the prompt strings exactly.

`datasets` is replaced by an empty module: no data goes through it. `utils.py` imports torch
and transformers (any recent version: only `encode_prompt` and `temp_seed` are called).

Run (from the repository root):
    git clone https://github.com/princeton-nlp/MeZO /tmp/MeZO   # commit 552cb1b was used
    python3 crates/zo-tasks/tools/icl_reference.py --mezo /tmp/MeZO/large_models
Writes crates/zo-tasks/tests/data/icl_reference.json atomically.
"""
import argparse
import inspect
import json
import os
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
OUT = os.path.join(HERE, "..", "tests", "data", "icl_reference.json")

# zo task name -> (MeZO Dataset class name, HF train-pool size for the demonstration-index vectors)
TASKS = {
    "sst2": ("SST2Dataset", 67349),
    "rte": ("RTEDataset", 2490),
    "copa": ("CopaDataset", 400),
    "record": ("ReCoRDDataset", 100730),
    "squad": ("SQuADDataset", 87599),
    "drop": ("DROPDataset", 77400),
}
MAX_NEW_TOKENS = 50


class ToyTokenizer:
    add_bos_token = True

    def encode(self, text):
        return [0] + [b + 4 for b in text.encode("utf-8")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mezo", required=True, help="MeZO's large_models directory")
    args = ap.parse_args()
    sys.modules["datasets"] = types.ModuleType("datasets")
    sys.modules["datasets"].load_dataset = None
    sys.path.insert(0, os.path.abspath(args.mezo))
    import tasks as mezo_tasks  # noqa: E402
    from utils import encode_prompt  # noqa: E402

    tok = ToyTokenizer()
    out = {"seeds": None, "demo_indices": {}, "prompts": {}, "nondiff": {}}
    for name, (cls_name, pool_len) in TASKS.items():
        cls = getattr(mezo_tasks, cls_name)
        ds = cls.__new__(cls)  # no __init__: it would download the dataset
        # Demonstration indices over the real pool size (icl.sh: 32 demos, 1000 eval examples).
        ds.samples = {"train": list(range(pool_len)), "valid": list(range(1000))}
        sets = ds.sample_train_sets(num_train=32, num_eval=1000)
        out["demo_indices"][name] = {"pool_len": pool_len, "k": 32, "first_sets": sets[:3]}

        rows = [json.loads(l) for l in open(os.path.join(ROOT, "tasks", name, "fixture.jsonl"))
                if l.strip()]
        nparams = len(inspect.signature(cls.build_sample).parameters)
        samples = [ds.build_sample(r, i) if nparams == 3 else ds.build_sample(r)
                   for i, r in enumerate(rows)]
        ds.samples = {"train": samples, "valid": samples}
        template = ds.get_template()
        cases = []
        for k in (0, 2):
            demo_sets = ds.sample_train_sets(num_train=k, num_eval=len(samples))
            for max_length in (2048, 64):
                for i, sample in enumerate(samples):
                    demos = demo_sets[i]
                    encodings, option_lens = encode_prompt(
                        ds, template, demos, sample, tok, max_length,
                        generation=ds.generation,
                        max_new_tokens=MAX_NEW_TOKENS if ds.generation else None)
                    cases.append({
                        "k": k, "max_length": max_length, "example": i,
                        "demos": [samples.index(d) for d in demos],
                        "encodings": encodings, "option_lens": option_lens,
                    })
        out["prompts"][name] = cases
        if ds.generation:
            # run.py `_convert` with `--non_diff`: the gold sequence, its option tokens cut off.
            nd = []
            for max_length in (2048, 64):
                for i, sample in enumerate(samples):
                    enc, lens = encode_prompt(
                        ds, template, [], sample, tok, max_length, generation=True,
                        generation_with_gold=True, max_new_tokens=MAX_NEW_TOKENS)
                    nd.append({"max_length": max_length, "example": i,
                               "input_ids": enc[0][:-lens[0]], "gold": sample.correct_candidate})
            out["nondiff"][name] = nd
    import numpy as np
    from utils import temp_seed
    with temp_seed(0):
        out["seeds"] = np.random.randint(0, 10000, 20).tolist()
    tmp = OUT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=None, separators=(",", ":"))
        f.write("\n")
    os.replace(tmp, OUT)
    print("wrote", os.path.relpath(OUT, ROOT))


if __name__ == "__main__":
    main()
