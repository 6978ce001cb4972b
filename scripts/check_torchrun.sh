#!/usr/bin/env bash
# cornet-trainer under real torchrun (PyTorch's elastic agent), against `cornet-trainer launch`:
#   1. static rendezvous, 2 ranks;
#   2. c10d rendezvous, 2 ranks;
#   3. --max-restarts 1, one rank killed mid-run: torchrun restarts both, they resume;
#   4. a rank that fails: torchrun's summary shows our message (from the error file).
# 1 to 3 must end with the final weights of `cornet-trainer launch --nproc 2`, byte for byte.
#
#   scripts/check_torchrun.sh PYTHON [REPORT.md]
#
# PYTHON is a Python with torch (pip install torch, in a venv outside the repository); the
# report (default docs/torchrun.md) gets the versions and each check's outcome. Builds the
# debug binary unless CORNET_TRAINER names one.
set -euo pipefail
python=${1:?usage: $0 PYTHON [REPORT.md]}
here=$(cd "$(dirname "$0")/.." && pwd)
report=${2:-$here/docs/torchrun.md}
trainer=$("$here/scripts/trainer_binary.sh")
work=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT

# The launcher tests' run: two ranks, 8 epochs of 6 steps, checkpointed every 2 steps.
sed -e "s|\$DATA|$work/data|" -e "s|\$OUT|$work/unused|" \
    "$here/cornet-trainer/tests/configs/two_ranks.yaml" > "$work/config.yaml"

# torchrun gives each of several ranks one thread (OMP_NUM_THREADS=1); so does every run here,
# since sums split over other thread counts round differently.
export OMP_NUM_THREADS=1

port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
torchrun() { "$python" -m torch.distributed.run "$@"; }
weights() { sha256sum < "$work/$1/final.safetensors" | cut -c1-16; }
results=()
check() { # NAME RUN: the run's final weights against the reference's
    if [ "$(weights "$2")" = "$(weights reference)" ]; then
        results+=("| $1 | same final weights as launch --nproc 2 ($(weights "$2")) |")
    else
        results+=("| $1 | **weights differ** ($(weights "$2") vs $(weights reference)) |")
        failed=1
    fi
}
failed=0
run_args() { echo --config "$work/config.yaml" -o "$work/$1"; }

echo "== reference: cornet-trainer launch --nproc 2"
"$trainer" launch --nproc 2 --master-port "$(port)" -- $(run_args reference) > "$work/reference.log" 2>&1

echo "== 1. torchrun, static rendezvous"
torchrun --nproc-per-node 2 --master-port "$(port)" --no-python \
    "$trainer" $(run_args static) > "$work/static.log" 2>&1
check "torchrun, static rendezvous, 2 ranks" static

echo "== 2. torchrun, c10d rendezvous"
torchrun --nnodes 1 --nproc-per-node 2 --rdzv-backend c10d --rdzv-endpoint "127.0.0.1:$(port)" \
    --rdzv-id cornet-check --no-python "$trainer" $(run_args c10d) > "$work/c10d.log" 2>&1
check "torchrun, c10d rendezvous, 2 ranks" c10d

echo "== 3. torchrun --max-restarts 1, rank 1 killed after 12 steps"
torchrun --nproc-per-node 2 --master-port "$(port)" --max-restarts 1 --no-python \
    "$trainer" $(run_args restart) > "$work/restart.log" 2>&1 &
agent=$!
until [ "$(grep -c '"phase":"train"' "$work/restart/records.jsonl" 2>/dev/null || true)" -ge 12 ]; do
    sleep 0.2
done
victim=$(pgrep -f -- "-o $work/restart" | while read -r pid; do
    tr '\0' '\n' < "/proc/$pid/environ" | grep -qx RANK=1 && echo "$pid"; done | head -1)
kill -9 "$victim"
wait "$agent"
check "torchrun --max-restarts 1, rank 1 killed (SIGKILL) after 12 steps" restart
restarts=$(grep -c "resuming from its newest checkpoint" "$work/restart.log" || true)
results+=("| ... restarted ranks resuming unasked | $restarts ranks logged \"restart 1 of the run: resuming from its newest checkpoint\" |")

echo "== 4. a rank that fails: torchrun's summary"
if torchrun --nproc-per-node 2 --master-port "$(port)" --no-python \
    "$trainer" --config "$work/missing.yaml" > "$work/fail.log" 2>&1; then
    results+=("| failing rank | **torchrun succeeded** |"); failed=1
elif grep -q "CornetError\|missing.yaml" <(sed -n '/Root Cause/,$p' "$work/fail.log"); then
    line=$(sed -n '/Root Cause/,$p' "$work/fail.log" | grep -m1 "missing.yaml" | sed 's/^ *//')
    results+=("| failing rank | torchrun's root cause shows: \`$line\` |")
else
    results+=("| failing rank | **our message is not in torchrun's summary** |"); failed=1
fi

{
    echo "# cornet-trainer under torchrun"
    echo
    echo "Written by \`scripts/check_torchrun.sh\` on $(date -u +%Y-%m-%d) with"
    echo "torch $("$python" -c 'import torch; print(torch.__version__)'), $(uname -sr), $(getconf _NPROCESSORS_ONLN) cores."
    echo
    echo "| check | outcome |"
    echo "|---|---|"
    printf '%s\n' "${results[@]}"
} > "$report"
cat "$report"
exit "$failed"
