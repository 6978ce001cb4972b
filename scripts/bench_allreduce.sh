#!/usr/bin/env bash
# TCP all-reduce throughput between two local CPU ranks for a CORnet-S-sized gradient.
#   scripts/bench_allreduce.sh [FLOATS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p cornet-trainer
target/release/cornet-trainer launch --nproc 2 --master-port "${MASTER_PORT:-29611}" -- \
    bench-allreduce --floats "${1:-53000000}" --iters 5
