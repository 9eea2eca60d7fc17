#!/usr/bin/env python3
"""Compiles zo's CUDA sweep kernel (crates/zo-core/src/perturb/sweep.cu) with NVRTC, the way
`perturb/cuda.rs` does at run time (the same options), on a machine with no GPU: NVRTC needs
none. CI runs it so that the source cannot stop compiling for the GPU unseen (its arithmetic is
checked on the CPU by `perturb::device_tests`).

Usage: python3 scripts/nvrtc-check.py CUDA_ROOT [SOURCE]
  CUDA_ROOT: the directory whose lib/ holds libnvrtc.so.13 (scripts/cuda-toolchain.sh's
  PREFIX/nvidia/cu13).
"""
import ctypes
import pathlib
import sys

# Keep in step with `ptx()` in crates/zo-core/src/perturb/cuda.rs.
OPTIONS = [b"--ftz=false", b"--prec-sqrt=true", b"--prec-div=true", b"--fmad=false"]
KERNELS = ["zo_sweep_f32", "zo_sweep_bf16", "zo_sweep_f16"]


def main() -> int:
    root = pathlib.Path(sys.argv[1])
    src = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "crates/zo-core/src/perturb/sweep.cu")
    # NVRTC dlopens its builtins by soname: loaded first, they are found whatever the loader path.
    for builtins in sorted((root / "lib").glob("libnvrtc-builtins.so.*")):
        if ".alt." not in builtins.name:
            ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(root / "lib" / "libnvrtc.so.13"))
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), src.read_bytes(), b"zo_sweep.cu", 0, None, None)
    if rc != 0:
        print(f"nvrtc-check: nvrtcCreateProgram failed ({rc})", file=sys.stderr)
        return 1
    opts = (ctypes.c_char_p * len(OPTIONS))(*OPTIONS)
    rc = lib.nvrtcCompileProgram(prog, len(OPTIONS), opts)
    n = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
    log = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetProgramLog(prog, log)
    text = log.value.decode(errors="replace").strip()
    if rc != 0:
        print(f"nvrtc-check: {src}: NVRTC failed ({rc}):\n{text}", file=sys.stderr)
        return 1
    lib.nvrtcGetPTXSize(prog, ctypes.byref(n))
    buf = ctypes.create_string_buffer(n.value)
    lib.nvrtcGetPTX(prog, buf)
    ptx = buf.value.decode()
    missing = [k for k in KERNELS if f".entry {k}(" not in ptx]
    if missing or text:
        print(f"nvrtc-check: {src}: missing kernels {missing}; log: {text!r}", file=sys.stderr)
        return 1
    # Subnormals must survive (the CPU keeps them): no flush-to-zero float op in the PTX.
    flushed = [l.strip() for l in ptx.splitlines() if ".ftz" in l]
    if flushed:
        print(f"nvrtc-check: {src}: flush-to-zero float ops: {flushed[:3]}", file=sys.stderr)
        return 1
    print(f"nvrtc-check: {src} compiles with NVRTC ({len(ptx)} bytes of PTX, kernels {', '.join(KERNELS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
