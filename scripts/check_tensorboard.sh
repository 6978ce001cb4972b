#!/usr/bin/env bash
# cornet-trainer's TensorBoard event files, read by the real `tensorboard` package:
#   1. the smoke run (configs/smoke.yaml: 15 steps per epoch; here 4 epochs, validated every
#      half epoch), killed after step 40 (its checkpoint of step 30 and validation of step 37
#      on disk, so the event files hold steps the resumed run redoes) and resumed;
#   2. EventAccumulator over OUT/tensorboard/ must show exactly the scalars of records.jsonl:
#      every tag, step and value (as float32), each step once (no orphan of the killed run,
#      no duplicate of what the resumed run redid).
#
#   scripts/check_tensorboard.sh PYTHON
#
# PYTHON is a Python with tensorboard (pip install tensorboard, in a venv outside the
# repository). Builds the debug binary unless CORNET_TRAINER names one.
set -euo pipefail
python=${1:?usage: $0 PYTHON}
here=$(cd "$(dirname "$0")/.." && pwd)
trainer=$("$here/scripts/trainer_binary.sh")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=$work/smoke
args=(--config "$here/configs/smoke.yaml" -o "$out" --set train.epochs=4
      --set output.save_val_epochs=0.5 --set output.tensorboard=true --set "data.train=$work/data/train"
      --set "data.val=$work/data/val")

# Steps recorded so far (0 before records.jsonl exists).
train_steps() {
    local n
    n=$(grep -c '"phase":"train"' "$out/records.jsonl" 2>/dev/null || true)
    echo "${n:-0}"
}

echo "== the smoke run, killed after step 40"
"$trainer" "${args[@]}" > "$work/first.log" 2>&1 &
pid=$!
until [ "$(train_steps)" -ge 40 ] || ! kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
echo "   killed after $(train_steps) recorded steps"
echo "== resumed"
"$trainer" "${args[@]}" --resume auto > "$work/resumed.log" 2>&1
ls "$out/tensorboard"

echo "== tensorboard $("$python" -c 'import tensorboard; print(tensorboard.__version__)'): EventAccumulator against records.jsonl"
"$python" - "$out" <<'PY'
import json, math, pathlib, struct, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = pathlib.Path(sys.argv[1])
batch = 32  # configs/smoke.yaml's train.batch_size, one rank
f32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]
expected = {}
for line in (run / "records.jsonl").read_text().splitlines():
    r = json.loads(line)
    nan = lambda v: math.nan if v is None else v
    values = {"loss": nan(r["loss"]), "top1": r["top1"], "top5": r["top5"]}
    if r["phase"] == "train":
        values.update(lr=r["lr"], images_per_sec=batch / r["dur"], data_wait_secs=r["data_load_dur"])
    for tag, v in values.items():
        expected.setdefault(f'{r["phase"]}/{tag}', []).append((r["step"], f32(v)))

acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
acc.Reload()
tags = sorted(acc.Tags()["scalars"])
assert tags == sorted(expected), f"tags {tags} != {sorted(expected)}"
same = lambda a, b: a == b or (math.isnan(a) and math.isnan(b))
for tag in tags:
    shown = [(e.step, e.value) for e in acc.Scalars(tag)]
    want = expected[tag]
    steps = [s for s, _ in shown]
    assert len(set(steps)) == len(steps), f"{tag}: duplicated steps"
    assert [s for s, _ in want] == steps, f"{tag}: steps {steps} != {[s for s, _ in want]}"
    bad = [(s, v, w) for (s, v), (_, w) in zip(shown, want) if not same(v, w)]
    assert not bad, f"{tag}: values differ at {bad[:3]}"
    print(f"   {tag}: {len(shown)} points, steps {steps[0]}..{steps[-1]}, as recorded")
print("OK: every tag, step and value as records.jsonl, each step once")
PY
