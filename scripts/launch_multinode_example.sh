#!/usr/bin/env bash
# Two nodes of 8 GPUs each: run this on every node with its NODE_RANK (0 or 1) and the job's
# secret, the same on both (its store serves only who proves it). Node 0 must be reachable at
# MASTER_ADDR:MASTER_PORT from the others; NCCL carries the gradients.
#
#   export CORNET_JOB_SECRET=$(openssl rand -hex 32)      # once, then the same on every node
#   NODE_RANK=0 MASTER_ADDR=10.0.0.1 scripts/launch_multinode_example.sh configs/cornet_s.yaml
#   NODE_RANK=1 MASTER_ADDR=10.0.0.1 scripts/launch_multinode_example.sh configs/cornet_s.yaml
set -euo pipefail
: "${CORNET_JOB_SECRET:?set CORNET_JOB_SECRET to the same secret on every node (openssl rand -hex 32)}"
config=${1:?usage: NODE_RANK=K MASTER_ADDR=A $0 CONFIG [trainer flags]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
trainer=${CORNET_TRAINER:-$here/target/release/cornet-trainer}
nodes=${NNODES:-2}
per_node=${NPROC_PER_NODE:-8}
exec "$trainer" launch --nproc "$per_node" --nnodes "$nodes" --node-rank "${NODE_RANK:?set NODE_RANK}" \
    --master-addr "${MASTER_ADDR:?set MASTER_ADDR}" --master-port "${MASTER_PORT:-29500}" -- \
    --config "$config" --set train.device=cuda --set dist.ngpus=$((nodes * per_node)) "$@"
