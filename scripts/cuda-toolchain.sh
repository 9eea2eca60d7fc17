#!/usr/bin/env bash
# CUDA 13.0's compiler (nvcc, cicc, ptxas), NVRTC (the run-time compiler of zo's sweep kernel:
# scripts/nvrtc-check.py), headers and, with --libs, the libraries a `--features cuda` build
# links (cuBLAS, cuRAND, the runtime), unpacked from NVIDIA's
# wheels on PyPI into PREFIX: no root, no GPU, no system CUDA needed. candle's `cuda` feature
# runs nvcc at build time (candle-kernels compiles its PTX; cudarc reads `nvcc --version` for
# the CUDA version its bindings target).
#
# Usage: bash scripts/cuda-toolchain.sh [--libs] [PREFIX]   (PREFIX default: target/cuda-toolchain)
# Then:  export CUDA_PATH=PREFIX/nvidia/cu13 PATH=PREFIX/nvidia/cu13/bin:$PATH
#
# 13.0 is the CUDA of the GPU machines this project is tested on (driver 580, PyTorch cu130):
# a binary linked here against libcublas.so.13 finds the same libraries there. The compiler
# wheels are ~100 MB, the libraries ~590 MB more (cuBLAS alone 420 MB).
set -euo pipefail

libs=0
if [ "${1:-}" = "--libs" ]; then
  libs=1
  shift
fi
prefix=${1:-target/cuda-toolchain}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)

wheels=(
  "nvidia-cuda-nvcc==13.0.88"
  "nvidia-nvvm==13.0.88"
  "nvidia-cuda-crt==13.0.88"
  "nvidia-cuda-runtime==13.0.96"
  "nvidia-cuda-cccl==13.0.85"
  "nvidia-cuda-nvrtc==13.0.88"
)
if [ "$libs" = 1 ]; then
  wheels+=("nvidia-cublas==13.0.2.14" "nvidia-curand==10.4.5.25")
fi

cuda=$prefix/nvidia/cu13
stamp=$prefix/.installed-$libs-nvrtc
if [ -f "$stamp" ] && [ -x "$cuda/bin/nvcc" ]; then
  echo "cuda-toolchain: already in $prefix"
else
  dl=$prefix/wheels
  mkdir -p "$dl"
  for attempt in 1 2 3; do
    if python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
      --python-version 3.11 -d "$dl" "${wheels[@]}"; then
      break
    fi
    if [ "$attempt" = 3 ]; then
      echo "cuda-toolchain: pip download failed three times" >&2
      exit 1
    fi
    sleep 10
  done
  # A wheel is a zip; its nvidia/cu13/{bin,include,lib,nvvm} trees merge into one CUDA root.
  python3 - "$dl" "$prefix" <<'PY'
import pathlib, sys, zipfile
dl, prefix = map(pathlib.Path, sys.argv[1:])
for whl in sorted(dl.glob("*.whl")):
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            if not info.filename.startswith("nvidia/") or info.is_dir():
                continue
            out = prefix / info.filename
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(info))
            # Keep the executable bit of nvcc, cicc, ptxas (zip stores the mode in the high bits).
            mode = (info.external_attr >> 16) & 0o777
            out.chmod(mode if mode else 0o644)
PY
  rm -rf "$dl"
  # The wheels ship versioned sonames only; the linker's -lcublas etc. want the plain names.
  if [ -d "$cuda/lib" ]; then
    for so in "$cuda"/lib/lib*.so.*; do
      base=${so##*/}
      plain=${base%%.so.*}.so
      case $base in *builtins*|*.alt.*) continue ;; esac
      [ -e "$cuda/lib/$plain" ] || ln -s "$base" "$cuda/lib/$plain"
    done
  fi
  touch "$stamp"
fi
"$cuda/bin/nvcc" --version | tail -n 2
echo "export CUDA_PATH=$cuda PATH=$cuda/bin:\$PATH"
