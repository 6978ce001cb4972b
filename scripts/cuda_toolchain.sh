#!/usr/bin/env bash
# The CUDA 13.0 toolchain from PyPI wheels, every part pinned to 13.0 (newer nvcc is refused
# by cudarc 0.19, newer nvvm/crt emit PTX the 13.0 ptxas rejects), in a venv outside the
# repository. Prints the exports that point cargo at it:
#
#   eval "$(scripts/cuda_toolchain.sh)"
#   cargo check -p cornet-trainer --features cuda,nccl
set -euo pipefail
venv=${CORNET_CUDA_VENV:-$HOME/.cache/cornet-rs/cuda-13.0}
if [ ! -f "$venv/.complete" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check \
        "nvidia-cuda-nvcc==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*" \
        "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" "nvidia-nccl-cu13" >&2
    touch "$venv/.complete"
fi
root=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
echo "export CUDA_ROOT='$root'"
echo "export PATH='$root/bin':\"\$PATH\""
echo "export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}"
