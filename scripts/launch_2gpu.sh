#!/usr/bin/env bash
# Two ranks on the two GPUs of this machine (NCCL), watched and restarted from the newest
# checkpoint if one fails.
#
#   scripts/launch_2gpu.sh configs/cornet_s.yaml [trainer flags, e.g. --set optim.lr=0.05]
#
# Needs a build with the GPU features: cargo build --release --features cuda,nccl
# (or scripts/build_gpu.sh). CORNET_TRAINER overrides the binary; MASTER_PORT the port.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 CONFIG [trainer flags]" >&2
    exit 2
fi
config=$1
shift
here=$(cd "$(dirname "$0")/.." && pwd)
trainer=${CORNET_TRAINER:-$here/target/release/cornet-trainer}
if [ ! -x "$trainer" ]; then
    echo "$trainer not found: build it with cargo build --release --features cuda,nccl" >&2
    exit 1
fi
exec "$trainer" launch --nproc 2 --master-port "${MASTER_PORT:-29500}" -- \
    --config "$config" --set train.device=cuda --set dist.ngpus=2 "$@"
