#!/usr/bin/env bash
# The CPU train-step and inference benchmark of docs/performance.md: ours and PyTorch's on
# the same machine in the same run, alternating, medians of each.
#
#   scripts/bench_cpu.sh [PYTHON]      # PYTHON: an interpreter with torch (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
cargo build --release -q -p cornet-trainer
for spec in "Z 16" "S 4"; do
    set -- $spec
    echo "== CORnet-$1, batch $2, 224 px"
    target/release/cornet-trainer bench --model "$1" --batch-size "$2" --image-size 224 --steps 7
    "$python" scripts/pytorch_cornet_bench.py --model "$1" --batch-size "$2" --image-size 224 --steps 7
done
