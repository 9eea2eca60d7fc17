#!/usr/bin/env bash
# Builds `zo` with `--features cuda` on a machine with no GPU and no system CUDA, for a GPU
# machine with CUDA 13 (driver ≥ 580): the compiler and libraries come from NVIDIA's PyPI
# wheels (scripts/cuda-toolchain.sh), the driver library is linked against a stub generated
# here (the real libcuda.so.1 is the GPU machine's), and the result is stripped and gzipped so
# that it is small enough to copy (≈ 18 MB).
#
# Usage: bash scripts/build-cuda.sh [OUT]   (OUT default: target/cuda/zo-cuda.gz)
# Env:   CUDA_COMPUTE_CAP (default 90: H100/H200; 80 for A100), CUDA_TOOLCHAIN (default
#        target/cuda-toolchain).
# On the GPU machine: gunzip it, then run it with the CUDA 13 libraries on the loader's path,
# e.g. those of PyTorch's wheels:
#   export LD_LIBRARY_PATH=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))')/nvidia/cu13/lib:$LD_LIBRARY_PATH
#   ./zo-cuda train --device cuda …
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-target/cuda/zo-cuda.gz}
toolchain=${CUDA_TOOLCHAIN:-target/cuda-toolchain}
bash scripts/cuda-toolchain.sh --libs "$toolchain" >/dev/null
cuda=$(cd "$toolchain" && pwd)/nvidia/cu13
export CUDA_PATH=$cuda PATH=$cuda/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}

# The driver API's stub: every `cu*` function cudarc declares, empty, in a library named
# libcuda.so.1 (what NVIDIA's toolkit ships as lib/stubs/libcuda.so; the wheels do not). Only
# the linker sees it: at run time the loader finds the GPU machine's own libcuda.so.1.
cargo fetch --locked >/dev/null
version=$(awk '/^name = "cudarc"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-"$version" | head -n 1)
mkdir -p "$cuda/lib/stubs"
grep -oE '^\s+fn cu[A-Za-z0-9_]+\(' "$src/src/driver/sys/mod.rs" \
  | sed -E 's/.*fn (cu[A-Za-z0-9_]+)\(/void \1(void) {}/' | sort -u >"$cuda/lib/stubs/cuda_stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$cuda/lib/stubs/libcuda.so" "$cuda/lib/stubs/cuda_stub.c"

target=target/cuda
CARGO_TARGET_DIR=$target cargo build --release --locked --features cuda --bin zo
mkdir -p "$(dirname "$out")"
objcopy --strip-debug "$target/release/zo" "$target/zo-cuda"
gzip -9 -c "$target/zo-cuda" >"$out.tmp" && mv "$out.tmp" "$out"
echo "build-cuda: $out ($(du -h "$out" | cut -f1); sm_$CUDA_COMPUTE_CAP; needs libcuda.so.1, libcublas.so.13, libcudart.so.13, libcurand.so.10, libnvrtc.so.13):"
readelf -d "$target/release/zo" | awk '/NEEDED/ { print "  " $NF }'
