#!/usr/bin/env python3
"""Writes the torch-format checkpoints of this directory with the standard library alone.

- tiny_opt.bin: a valid state dict of a tiny OPT (vocab 8, hidden 4, one layer, ffn 8,
  8 positions), as `torch.save` writes it (a zip with `archive/data.pkl` + `archive/data/N`).
- evil_*.bin: the same archive whose pickle calls something other than the tensor-rebuild
  functions (`posix.system`, `builtins.eval`, ...): under a plain `torch.load` (weights_only
  False) unpickling one would run `touch /tmp/zo-pwned`. The loaders must refuse them.

Run: python3 make_pickles.py [OUT_DIR]   (default: this directory)
"""
import io
import os
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))

# Stand-ins for torch's globals, so that pickle writes GLOBAL "torch._utils _rebuild_tensor_v2"
# and "torch FloatStorage" exactly as torch.save does.
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")


def _rebuild_tensor_v2(*args):
    raise RuntimeError("not for calling")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class FloatStorage:
    pass


FloatStorage.__module__ = "torch"
torch.FloatStorage = FloatStorage
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


class Storage:
    def __init__(self, key, numel):
        self.key = key
        self.numel = numel


class Tensor:
    def __init__(self, storage, shape):
        self.storage = storage
        self.shape = shape

    def __reduce__(self):
        stride = []
        acc = 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        return (
            _rebuild_tensor_v2,
            (self.storage, 0, tuple(self.shape), tuple(stride), False, OrderedDict()),
        )


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
        return None


def opt_shapes(vocab=8, hidden=4, ffn=8, positions=8):
    p = "decoder."
    shapes = [
        (p + "embed_tokens.weight", [vocab, hidden]),
        (p + "embed_positions.weight", [positions + 2, hidden]),
        (p + "final_layer_norm.weight", [hidden]),
        (p + "final_layer_norm.bias", [hidden]),
    ]
    layer = p + "layers.0."
    for proj in ["k_proj", "v_proj", "q_proj", "out_proj"]:
        shapes.append((layer + "self_attn." + proj + ".weight", [hidden, hidden]))
        shapes.append((layer + "self_attn." + proj + ".bias", [hidden]))
    shapes += [
        (layer + "self_attn_layer_norm.weight", [hidden]),
        (layer + "self_attn_layer_norm.bias", [hidden]),
        (layer + "fc1.weight", [ffn, hidden]),
        (layer + "fc1.bias", [ffn]),
        (layer + "fc2.weight", [hidden, ffn]),
        (layer + "fc2.bias", [hidden]),
        (layer + "final_layer_norm.weight", [hidden]),
        (layer + "final_layer_norm.bias", [hidden]),
    ]
    return shapes


def state_dict_archive(extra=None):
    """The zip of a tiny OPT state dict; `extra`, a (key, object) pair, is added to the dict."""
    sd = OrderedDict()
    blobs = {}
    for i, (name, shape) in enumerate(opt_shapes()):
        n = 1
        for d in shape:
            n *= d
        key = str(i)
        blobs[key] = struct.pack("<%df" % n, *[((j * 7 + i) % 11 - 5) / 10 for j in range(n)])
        sd[name] = Tensor(Storage(key, n), shape)
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(sd)
    data = buf.getvalue()
    if extra is not None:
        data = splice(data, extra)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        # A fixed timestamp: the files are reproducible byte for byte.
        def put(name, payload):
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), payload)

        put("archive/data.pkl", data)
        for key, blob in blobs.items():
            put("archive/data/" + key, blob)
        put("archive/version", b"3\n")
    return out.getvalue()


def splice(pkl, payload):
    """Inserts `payload` (raw opcodes leaving one value on the stack) as the value of an extra
    key "x" of the top-level dict: before the final STOP, a SETITEM onto the dict."""
    assert pkl.endswith(b".")
    key = b"X\x01\x00\x00\x00x"  # BINUNICODE "x"
    return pkl[:-1] + key + payload + b"s."  # SETITEM, STOP


# The call payloads: each pushes a callable with GLOBAL / STACK_GLOBAL and calls it with REDUCE.
CMD = b"touch /tmp/zo-pwned"


def binunicode(s):
    return b"X" + struct.pack("<I", len(s)) + s


PAYLOADS = {
    # GLOBAL "posix system" + (cmd,) + REDUCE: what os.system pickles as on Linux.
    "evil_posix_system": b"cposix\nsystem\n" + binunicode(CMD) + b"\x85R",
    # GLOBAL "os system".
    "evil_os_system": b"cos\nsystem\n" + binunicode(CMD) + b"\x85R",
    # STACK_GLOBAL (protocol 4) "builtins" "eval".
    "evil_builtins_eval": binunicode(b"builtins")
    + binunicode(b"eval")
    + b"\x93"
    + binunicode(b"__import__('os').system('" + CMD + b"')")
    + b"\x85R",
    # INST (class instantiation by name): subprocess.Popen(["sh", "-c", cmd]).
    "evil_subprocess_inst": b"(](" + binunicode(b"sh") + binunicode(b"-c") + binunicode(CMD)
    + b"eisubprocess\nPopen\n",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "tiny_opt.bin"), "wb") as f:
        f.write(state_dict_archive())
    for name, payload in PAYLOADS.items():
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(state_dict_archive(payload))


if __name__ == "__main__":
    main()
