#!/usr/bin/env bash
# `--weights Z|R|RT|S` against PyTorch's own fetch of the published CORnet weights (needs the
# internet; the tests use a local server instead):
#   1. torch.hub fetches each file into one TORCH_HOME (hash checked, as `check_hash=True`);
#   2. cornet-trainer downloads it into a fresh TORCH_HOME: the same bytes, the same name;
#   3. cornet-trainer with torch's TORCH_HOME reuses its file: no download.
# Each run is `cornet-trainer test` on one zero image, so the file must also load.
#
#   scripts/check_published_weights.sh PYTHON [MODELS...]     (default models: Z R RT S)
#
# PYTHON is a Python with torch (pip install torch, in a venv outside the repository). Builds
# the debug binary unless CORNET_TRAINER names one; CORNET_WEIGHTS_BASE_URL, if set, is used by
# both sides.
set -euo pipefail
python=${1:?usage: $0 PYTHON [MODELS...]}
shift
[ $# -gt 0 ] || set -- Z R RT S
here=$(cd "$(dirname "$0")/.." && pwd)
trainer=$("$here/scripts/trainer_binary.sh")
base=${CORNET_WEIGHTS_BASE_URL:-https://s3.amazonaws.com/cornet-models/}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" -c 'import numpy as np; np.save("'"$work"'/x.npy", np.zeros((1, 3, 224, 224), np.float32))'
failed=0
for model in "$@"; do
    echo "== CORnet-$model"
    # The file name in our table, from the error of a fetch from nowhere.
    name=$(CORNET_WEIGHTS_BASE_URL=http://127.0.0.1:1 TORCH_HOME=$work/none "$trainer" test --model "$model" --weights "$model" \
        --input-npy "$work/x.npy" -o "$work/names" 2>&1 | grep -o "cornet_[a-z]*-[0-9a-f]*\.pth" | head -1 || true)
    [ -n "$name" ] || { echo "no file name in the error of a fetch from nowhere"; exit 1; }
    TORCH_HOME=$work/torch "$python" - "$base" "$name" <<'EOF'
import sys, torch.hub
base, name = sys.argv[1:]
torch.hub.load_state_dict_from_url(base.rstrip("/") + "/" + name, map_location="cpu", check_hash=True)
EOF
    TORCH_HOME=$work/ours "$trainer" test --model "$model" --weights "$model" \
        --input-npy "$work/x.npy" -o "$work/out_ours_$model" 2> "$work/ours_$model.log"
    if cmp -s "$work/torch/hub/checkpoints/$name" "$work/ours/hub/checkpoints/$name"; then
        echo "ok: $name downloaded as torch.hub downloads it"
    else
        echo "FAILED: $name differs from torch.hub's"; failed=1
    fi
    TORCH_HOME=$work/torch "$trainer" test --model "$model" --weights "$model" \
        --input-npy "$work/x.npy" -o "$work/out_torch_$model" 2> "$work/torch_$model.log"
    if grep -q downloading "$work/torch_$model.log"; then
        echo "FAILED: torch.hub's cached $name was downloaded again"; failed=1
    else
        echo "ok: torch.hub's cached $name reused"
    fi
done
exit $failed
