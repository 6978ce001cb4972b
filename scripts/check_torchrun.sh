#!/usr/bin/env bash
# cornet-trainer under real torchrun (PyTorch's elastic agent), against `cornet-trainer launch`:
#   1. static rendezvous, 2 ranks;
#   2. c10d rendezvous, 2 ranks;
#   3. --max-restarts 1, one rank killed mid-run: torchrun restarts both, they resume;
#   4. a rank that fails: torchrun's summary shows our message (from the error file);
#   5. elastic, --nnodes 1:2 as two agents on this machine around a standalone rendezvous
#      store, a node (agent and worker) lost: the survivor's worker resumes at WORLD_SIZE=1;
#   6. elastic, a node added to a running job: torchrun starts both workers at WORLD_SIZE=2
#      without counting a restart (--max-restarts 0), and they continue the run.
# 1 to 3 must end with the final weights of `cornet-trainer launch --nproc 2`, byte for byte;
# 5 and 6 with every step recorded once (the global batch is kept, the ranks' sums are not).
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

# The launcher tests' run: two ranks, 8 epochs of 12 steps, checkpointed every 2 steps.
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
train_steps() { # RUN: the train steps it has recorded
    local records=$work/$1/records.jsonl
    if [ -f "$records" ]; then grep -c '"phase":"train"' "$records" || true; else echo 0; fi
}
wait_for_steps() { until [ "$(train_steps "$1")" -ge "$2" ]; do sleep 0.2; done; }
kill_tree() { # PID: it and every process below it, at once (a node lost)
    local child
    for child in $(pgrep -P "$1"); do kill_tree "$child"; done
    kill -9 "$1" 2>/dev/null || true
}

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
wait_for_steps restart 12
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

# Two elastic agents ("nodes") of one worker each, joined through a rendezvous store of its
# own, as a cluster's is: an agent that hosts the store would take it down with it. torchrun
# shares its rendezvous store with the workers by default, and then fails a scale-up (torch
# 2.15); TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 gives them a store apart.
export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
store_port=$(port)
"$python" -c 'import sys, time
from torch.distributed import TCPStore
store = TCPStore("127.0.0.1", int(sys.argv[1]), is_master=True, wait_for_workers=False)
time.sleep(3600)' "$store_port" &
store=$!
# Long enough (40 epochs) that the node comes or goes well before the end.
elastic_epochs=40
elastic_agent() { # RUN MAX_RESTARTS: one agent of the elastic job training RUN
    torchrun --nnodes 1:2 --nproc-per-node 1 --max-restarts "$2" --rdzv-backend c10d \
        --rdzv-endpoint "127.0.0.1:$store_port" --rdzv-id "cornet-$1" \
        --rdzv-conf is_host=false,last_call_timeout=2 --monitor-interval 1 --no-python \
        "$trainer" $(run_args "$1") --set "train.epochs=$elastic_epochs"
}
every_step_once() { # NAME RUN: train steps 1..N each once, N those of $elastic_epochs epochs
    local expected
    expected=$(($(train_steps reference) / 8 * elastic_epochs))
    if "$python" - "$work/$2/records.jsonl" "$expected" <<'PY'
import json, sys
steps = [r["step"] for r in map(json.loads, open(sys.argv[1])) if r["phase"] == "train"]
sys.exit(0 if steps == list(range(1, int(sys.argv[2]) + 1)) else 1)
PY
    then
        results+=("| $1 | every one of the $expected steps recorded once |")
    else
        results+=("| $1 | **steps missing or repeated** (see $work/$2/records.jsonl) |")
        failed=1
    fi
}

echo "== 5. elastic --nnodes 1:2, a node lost after 12 steps"
elastic_agent lost 3 > "$work/lost-0.log" 2>&1 &
first=$!
elastic_agent lost 3 > "$work/lost-1.log" 2>&1 &
second=$!
wait_for_steps lost 12
kill_tree "$second"
wait "$first"
every_step_once "elastic 1:2, a node lost after 12 steps: the survivor continues alone" lost

echo "== 6. elastic --nnodes 1:2, a node added after 12 steps, --max-restarts 0"
elastic_agent joined 0 > "$work/joined-0.log" 2>&1 &
first=$!
wait_for_steps joined 12
elastic_agent joined 0 > "$work/joined-1.log" 2>&1 &
second=$!
wait "$first"
wait "$second"
every_step_once "elastic 1:2, a node added after 12 steps: both continue at WORLD_SIZE=2" joined
resumed=$(cat "$work"/joined-*.log | grep -c "is this elastic job's" || true)
results+=("| ... workers continuing the joined job by themselves | $resumed ranks logged \"the newest checkpoint is this elastic job's\" |")
kill "$store"

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
