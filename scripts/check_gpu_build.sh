#!/usr/bin/env bash
# Everything about the GPU build that can be checked without a GPU. Builds the binary
# (scripts/build_gpu.sh) and the test executables with the GPU features against the CUDA 13.0
# wheels, then runs them here, where the driver stub answers CUDA_ERROR_NO_DEVICE: the CPU
# tests must pass in the GPU build, the GPU tests (cuDNN convolution, first SGD step on the
# GPU, one-rank NCCL) must skip, and `bench --device cuda` must fail with a message. The
# stripped copies in target/gpu/ are what to carry to a GPU machine, where the same tests run
# for real.
#
#   scripts/check_gpu_build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${CORNET_CUDA_VENV:-$HOME/.cache/cornet-rs/cuda-13.0}
scripts/build_gpu.sh

eval "$(scripts/cuda_toolchain.sh)"
target=$(scripts/target_dir.sh)
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$venv/link"
features=cornet-trainer/cuda,cornet-trainer/cudnn,cornet-trainer/nccl
# One line per test executable: its path, and the name its stripped copy gets
# (<crate>-<target>: both crates' integration tests are a target named `tests`).
executables=$(cargo test --release --no-run --message-format=json -p cornet-model \
    -p cornet-trainer --lib --test tests --features "$features" |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["profile"]["test"] and m["executable"]:
        crate = m["package_id"].split("#")[0].rsplit("/", 1)[-1]
        print(m["executable"], crate + "-" + m["target"]["name"])')

site=$("$venv/bin/python" -c 'import nvidia; print(nvidia.__path__[0])')
export LD_LIBRARY_PATH="$venv/link:$site/cu13/lib:$site/nccl/lib:$site/cudnn/lib"
log=$(mktemp)
while read -r test _; do
    echo "== $test" >&2
    # The integration tests are one binary per crate (tests-*); of them only sgd_parity's
    # were ever run here.
    filter=()
    [[ $(basename "$test") == tests-* ]] && filter=(sgd_parity::)
    if ! "$test" --nocapture "${filter[@]}" >"$log" 2>&1; then
        cat "$log" >&2
        exit 1
    fi
    grep -E '^no CUDA device|^test result' "$log" | sort | uniq -c
done <<<"$executables"
rm -f "$log"

if message=$("$target/gpu/cornet-trainer" bench --device cuda --model Z --steps 1 2>&1); then
    echo "bench --device cuda succeeded without a GPU" >&2
    exit 1
fi
echo "bench --device cuda without a GPU: $message" >&2
mkdir -p "$target/gpu/tests"
while read -r test name; do
    strip -o "$target/gpu/tests/$name" "$test"
done <<<"$executables"
echo "GPU build checked. Stripped for carrying: $target/gpu/ (the binaries, and the test" \
    "executables in tests/, which find the parity fixtures through CORNET_FIXTURES)" >&2
