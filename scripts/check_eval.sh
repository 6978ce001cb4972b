#!/usr/bin/env bash
# `cornet-trainer eval` against PyTorch: a short smoke run (configs/smoke.yaml, 4 epochs of
# CORnet-Z on the generated 10-class images) writes final.safetensors; `eval` scores it on the
# validation folder, and scripts/pytorch_eval.py loads the same file into the original CORnet
# graph and scores the same folder with the original's validation transform. They must agree:
# images, top-1 and top-5 exactly, the loss within 1e-4 relative.
#
#   scripts/check_eval.sh PYTHON [REPORT.md]
#
# PYTHON is a Python with torch, torchvision and safetensors (a venv outside the repository);
# the report (default docs/eval.md) gets the commands, both JSON lines and the verdict. Builds
# the debug binary unless CORNET_TRAINER names one.
set -euo pipefail
python=${1:?usage: $0 PYTHON [REPORT.md]}
here=$(cd "$(dirname "$0")/.." && pwd)
report=${2:-$here/docs/eval.md}
trainer=$("$here/scripts/trainer_binary.sh")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$trainer" --config "$here/configs/smoke.yaml" -o "$work/run" --epochs 4 \
    --set data.train="$work/data/train" --set data.val="$work/data/val" > /dev/null
eval_args=(--model Z --weights "$work/run/final.safetensors" --data-path "$work/data/val"
           --image-size 64 --batch-size 32)
ours=$("$trainer" eval "${eval_args[@]}")
theirs=$("$python" "$here/scripts/pytorch_eval.py" "${eval_args[@]}")
verdict=$("$python" - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = (json.loads(s) for s in sys.argv[1:3])
same = all(ours[k] == theirs[k] for k in ("images", "top1", "top5"))
rel = abs(ours["loss"] - theirs["loss"]) / abs(theirs["loss"])
ok = same and rel <= 1e-4
print(f"{'PASS' if ok else 'FAIL'}: images, top-1, top-5 {'equal' if same else 'DIFFER'}; "
      f"loss relative difference {rel:.2e} (limit 1e-4)")
PY
)
versions=$("$python" -c 'import torch, torchvision, safetensors; print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, safetensors {safetensors.__version__}")')
cat > "$report" <<MD
# \`eval\` against PyTorch

\`scripts/check_eval.sh PYTHON\` trains the smoke run for 4 epochs (CORnet-Z, 10 generated
classes, 64 px), then scores its \`final.safetensors\` on the 160 validation images twice:
with \`cornet-trainer eval\`, and with \`scripts/pytorch_eval.py\`, which loads the same file
into the original CORnet graph (\`tools/fixtures/cornet_reference.py\`) and applies the
original \`run.py\`'s validation transform and \`accuracy()\`. Images, top-1 and top-5 must be
equal, the loss within 1e-4 relative.

Last run: $(date -u +%Y-%m-%d), $versions.

\`\`\`
$ cornet-trainer eval --model Z --weights run/final.safetensors --data-path data/val --image-size 64 --batch-size 32
$ours
$ python3 scripts/pytorch_eval.py --model Z --weights run/final.safetensors --data-path data/val --image-size 64 --batch-size 32
$theirs
\`\`\`

$verdict
MD
echo "$verdict"
case $verdict in PASS*) ;; *) exit 1 ;; esac
