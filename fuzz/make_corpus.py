#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/) from the repository's
own fixtures. Multi-file inputs are joined with the line "%%" (see zo_runner::fuzzing).

Run from the repository root: python3 fuzz/make_corpus.py [RUN_DIR]
RUN_DIR: a finished or interrupted run directory whose checkpoint state and logs seed
`resume_state` (e.g. from `zo quickstart --steps 6 --set train.checkpoint_every=3`); without
it the committed resume seeds are kept.
"""
import json
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
SEP = b"\n%%\n"


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    """tensors: [(name, shape, floats)] -> safetensors bytes (F32)."""
    header = {}
    blobs = b""
    for name, shape, values in tensors:
        data = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(blobs), len(blobs) + len(data)]}
        blobs += data
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blobs


def opt_tensors():
    sys.path.insert(0, os.path.join(ROOT, "crates/zo-models/tests/data/pickle"))
    import make_pickles  # noqa: E402

    out = []
    for i, (name, shape) in enumerate(make_pickles.opt_shapes()):
        n = 1
        for d in shape:
            n *= d
        out.append(("model." + name, shape, [((j * 7 + i) % 11 - 5) / 10 for j in range(n)]))
    return out


TINY_CONFIG = {
    "vocab_size": 8,
    "hidden_size": 4,
    "num_hidden_layers": 1,
    "ffn_dim": 8,
    "max_position_embeddings": 8,
    "num_attention_heads": 1,
    "activation_function": "relu",
    "torch_dtype": "float32",
}


def opt_model():
    cfg = json.dumps(TINY_CONFIG).encode()
    t = opt_tensors()
    put("opt_model", "tiny", cfg + SEP + safetensors(t, {"format": "pt"}))
    # With a tied lm_head and opt-350m-style post-LN.
    cfg2 = dict(TINY_CONFIG, do_layer_norm_before=False, activation_function="gelu")
    put("opt_model", "tiny-postln-lmhead", json.dumps(cfg2).encode() + SEP
        + safetensors(t + [("lm_head.weight", [8, 4], [0.0] * 32)]))
    # A header claiming 10^12 elements backed by 16 bytes.
    h = json.dumps({"model.decoder.embed_tokens.weight": {"dtype": "F32", "shape": [1000000, 1000000], "data_offsets": [0, 16]}}).encode()
    put("opt_model", "huge-claim", cfg + SEP + struct.pack("<Q", len(h)) + h + b"\0" * 16)
    put("opt_model", "empty", cfg + SEP)


def pytorch_bin():
    d = os.path.join(ROOT, "crates/zo-models/tests/data/pickle")
    subprocess.run([sys.executable, os.path.join(d, "make_pickles.py"), d], check=True)
    for name in ["tiny_opt.bin", "evil_posix_system.bin", "evil_builtins_eval.bin"]:
        with open(os.path.join(d, name), "rb") as f:
            put("pytorch_bin", name, f.read())


def tokenizer():
    chars = list("abcdefghijklmnopqrstuvwxyz.,!?'") + ["Ġ", "Ċ"]
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for c in chars:
        vocab[c] = len(vocab)
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("e", "r"), ("Ġ", "a")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    mtext = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    tcfg = json.dumps({"model_max_length": 2048, "bos_token": "</s>", "add_bos_token": True,
                       "tokenizer_class": "GPT2Tokenizer"})
    put("tokenizer", "small", json.dumps(vocab).encode() + SEP + mtext.encode() + SEP + tcfg.encode())
    put("tokenizer", "no-config", json.dumps(vocab).encode() + SEP + mtext.encode())


TASKS = ["sst2", "rte", "copa", "record", "squad", "drop"]


def task_rows():
    for i, t in enumerate(TASKS):
        for f, ext in enumerate(["jsonl", "parquet"]):
            with open(os.path.join(ROOT, "tasks", t, "fixture." + ext), "rb") as fh:
                put("task_rows", f"{t}-{ext}", bytes([i + 6 * f]) + fh.read())


def config():
    def read(p):
        with open(os.path.join(ROOT, p), "rb") as f:
            return f.read()

    put("config", "default", read("configs/default.toml"))
    put("config", "quickstart-sets", read("configs/quickstart.toml") + SEP
        + b"train.steps=7\noptimizer.method=ga\noptimizer.lr=1e-6\nmodel.dtype=\"bf16\"\ntask.name=copa\n")
    put("config", "table6-copa-as2p", read("configs/paper/table6/copa-as2p.toml") + SEP + b"train.steps=3\n")
    put("config", "resnet", b'[model]\nkind = "resnet"\nsource = "builtin:tiny-resnet"\n[task]\nname = "cifar10"\n'
        + SEP + b"optimizer.method=stp\noptimizer.lr=1e-3\ntrain.batch_size=2\n")


def resume_state(run_dir):
    if not run_dir:
        return
    def read(p):
        with open(os.path.join(run_dir, p), "rb") as f:
            return f.read()

    state = read("checkpoint/state.json")
    traj = read("trajectory.jsonl")
    metrics = read("metrics.jsonl")
    put("resume_state", "run", state + SEP + traj + SEP + metrics)
    put("resume_state", "torn", state + SEP + traj[:-7] + SEP + metrics[:-3])
    put("resume_state", "state-only", state)


if __name__ == "__main__":
    opt_model()
    pytorch_bin()
    tokenizer()
    task_rows()
    config()
    resume_state(sys.argv[1] if len(sys.argv) > 1 else None)
