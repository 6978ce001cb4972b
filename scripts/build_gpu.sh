#!/usr/bin/env bash
# Builds the GPU binary (features cuda,cudnn,nccl) on a machine without a GPU or a CUDA
# install, to carry to one that has them:
#
#   scripts/build_gpu.sh                       # -> target/release/cornet-trainer (+ stripped target/gpu/)
#   CORNET_GPU_FEATURES=cuda,nccl scripts/build_gpu.sh --profile dev
#
# `target/` is cargo's target directory (CARGO_TARGET_DIR where set). cornet-data's command is
# built beside the trainer and stripped with it: the GPU proof benchmarks the loader too.
#
# The compiler and headers come from the CUDA 13.0 wheels of scripts/cuda_toolchain.sh; the
# libraries the binary links against (cudart, cublas, cublasLt, curand, nvrtc, nccl, cudnn)
# from their 13.0 wheels in the same venv. `libcuda` belongs to the driver and has no wheel:
# the link uses a stub generated from cuda.h's declarations (soname libcuda.so.1) and the
# GPU machine's driver provides the real one at run time. The binary finds the other
# libraries through the GPU machine's loader path (LD_LIBRARY_PATH or its CUDA install), so
# that one build runs against any 13.x install there (the driver must support CUDA 13.0:
# 580 or newer). Extra arguments go to cargo build.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
features=${CORNET_GPU_FEATURES:-cuda,cudnn,nccl}
venv=${CORNET_CUDA_VENV:-$HOME/.cache/cornet-rs/cuda-13.0}

eval "$("$here/scripts/cuda_toolchain.sh")"

if [ ! -f "$venv/.runtime-complete" ]; then
    echo "installing the CUDA 13.0 runtime libraries into $venv ..." >&2
    "$venv/bin/pip" install -q --disable-pip-version-check \
        "nvidia-cublas==13.0.*" "nvidia-curand==10.4.0.*" "nvidia-cuda-nvrtc==13.0.*" \
        "nvidia-cudnn-cu13==9.13.*" >&2
    touch "$venv/.runtime-complete"
fi

# The wheels ship only versioned names (libcublas.so.13); the linker looks for libcublas.so.
# One folder of unversioned links, plus the libcuda stub, is what -L points at.
link_dir="$venv/link"
mkdir -p "$link_dir"
site=$("$venv/bin/python" -c 'import nvidia, os; print(nvidia.__path__[0])')
for lib in "$site"/cu13/lib/lib*.so.* "$site"/nccl/lib/lib*.so.* "$site"/cudnn/lib/lib*.so.*; do
    [ -e "$lib" ] || continue
    name=$(basename "$lib")
    ln -sf "$lib" "$link_dir/${name%%.so.*}.so"
done

stub="$link_dir/libcuda.so"
if [ ! -f "$link_dir/libcuda.so.1" ]; then
    # Every driver entry point the headers declare, under the names the driver exports:
    # cuda.h maps cuMemAlloc to cuMemAlloc_v2 and so on, so the names are read after
    # preprocessing, once as applications see them and once with the older versions too
    # (__CUDA_API_VERSION_INTERNAL), as the driver exports both. Each returns
    # CUDA_ERROR_NO_DEVICE (100), so that binaries linked here also run here, as on a machine
    # without a GPU (scripts/check_gpu_build.sh).
    stub_c=$(mktemp --suffix .c)
    for internal in "" -D__CUDA_API_VERSION_INTERNAL; do
        gcc -E -P $internal "$CUDA_ROOT/include/cuda.h"
    done | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d '( \t' | sort -u |
        sed 's/.*/int &(void) { return 100; }/' >"$stub_c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub" "$stub_c"
    ln -sf libcuda.so "$link_dir/libcuda.so.1"
    rm -f "$stub_c"
fi

export RUSTFLAGS="${RUSTFLAGS:-} -L native=$link_dir"
cd "$here"
target=$(scripts/target_dir.sh)
# Two packages in one build: the features are named by package.
cargo build --release -p cornet-trainer -p cornet-data \
    --features "cornet-trainer/${features//,/,cornet-trainer/}" "$@"

# Every symbol the binary leaves to the loader must come from a library the GPU machine has.
profile=release
case " $* " in *" --profile dev "* | *" --profile=dev "*) profile=debug ;; esac
binary=$target/$profile/cornet-trainer
echo "built $binary; it needs at run time:" >&2
readelf -d "$binary" | grep NEEDED | sed 's/.*\[\(.*\)\]/  \1/' >&2

# Resolve every symbol now against the wheels' libraries (and the stub for the driver), so
# that a missing library or a symbol the 13.0 libraries lack shows here, not on the GPU.
unresolved=$(LD_LIBRARY_PATH="$link_dir:$site/cu13/lib:$site/nccl/lib:$site/cudnn/lib" \
    ldd -r "$binary" 2>&1 | grep -E 'not found|undefined symbol' || true)
if [ -n "$unresolved" ]; then
    echo "$binary does not resolve against the CUDA 13.0 wheels:" >&2
    echo "$unresolved" >&2
    exit 1
fi
# Without their line tables the binaries are about a third the size, for carrying.
mkdir -p "$target/gpu"
strip -o "$target/gpu/cornet-trainer" "$binary"
strip -o "$target/gpu/cornet-data" "$target/$profile/cornet-data"
echo "every symbol resolves; stripped copies for carrying: $target/gpu/" >&2
