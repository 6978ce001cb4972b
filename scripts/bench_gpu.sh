#!/usr/bin/env bash
# The GPU train-step benchmark of docs/performance.md, run on the GPU machine: CORnet-Z, RT
# and S at batch 128 and 256, f32 and bf16, ours and PyTorch's best case (cudnn.benchmark,
# channels_last, bf16 autocast) alternating in the same run, medians of each. PyTorch's lines
# carry `train_tflop`, the FLOPs of one step, for the fraction of the GPU's peak.
#
#   scripts/bench_gpu.sh [BINARY] [PYTHON]
#
# BINARY: built here by scripts/build_gpu.sh and carried over (default its stripped copy,
# target/gpu/cornet-trainer). PYTHON: an interpreter with a CUDA build of torch (default
# python3). The binary loads CUDA 13's libraries (cudart, cuBLAS, cuRAND, NVRTC, NCCL, cuDNN)
# through LD_LIBRARY_PATH; every `nvidia/*/lib` folder of PYTHON's site-packages is added to
# it, so a torch built for CUDA 13 provides them all.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/gpu/cornet-trainer}
python=${2:-python3}

libs=$("$python" -c 'import glob, nvidia, os
print(":".join(sorted({os.path.dirname(p) for root in nvidia.__path__
                       for p in glob.glob(os.path.join(root, "*", "lib", "lib*.so*"))})))')
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if missing=$(ldd "$binary" | grep 'not found'); then
    echo "$binary cannot find these libraries (install the CUDA 13 wheels of build_gpu.sh):" >&2
    echo "$missing" >&2
    exit 1
fi

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
for model in Z RT S; do
    for batch in 128 256; do
        for precision in f32 bf16; do
            echo "== CORnet-$model, batch $batch, $precision, 224 px"
            "$binary" bench --device cuda --model "$model" --batch-size "$batch" \
                --precision "$precision" --image-size 224 --steps 10
            "$python" scripts/pytorch_cornet_bench.py --device cuda --model "$model" \
                --batch-size "$batch" --precision "$precision" --image-size 224 --steps 10
        done
    done
done
