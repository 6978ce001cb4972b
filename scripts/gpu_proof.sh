#!/usr/bin/env bash
# The first GPU run of cornet-rs in one go, on a GPU machine without a Rust toolchain. Run it
# from the repository's root, with the kit of scripts/gpu_kit.sh in .gpu-kit/:
#
#   scripts/gpu_proof.sh OUT_DIR
#
# It unpacks the kit, puts CUDA 13's libraries from python3's nvidia wheels on the loader path,
# checks that every executable resolves, and, if a GPU answers, runs: the GPU tests (cuDNN
# convolutions and both gradients, BatchNorm groups, the first SGD step of every parity fixture
# in f32 and bf16, one-rank NCCL); configs/smoke.yaml trained to its end on the GPU (and on the
# CPU, alongside the tests, for comparison) and its weights evaluated; the train step of
# CORnet-Z, RT and S against PyTorch's; the loader on this machine's cores. Each step has its
# own time limit, and all of it fits in CORNET_PROOF_BUDGET_S (470 s: under 8 minutes).
# OUT_DIR/gpu_report.md and gpu_report.json are rewritten after every step (and after every
# benchmark run), so a step that hangs still leaves the others' results; each step's output is
# in OUT_DIR/logs/. Nothing here asks for CUDA managed memory (gpu_kit.sh refuses executables
# that import it: it can hang the GPU).
#
# Exit status: 0 every step passed; 1 a step failed or ran out of time; 2 no GPU (nothing past
# the kit and library checks ran); 3 bad usage.
#
# Environment: CORNET_PROOF_PYTHON (default python3): its site-packages' nvidia/*/lib folders go
# on LD_LIBRARY_PATH, ahead of what it holds, and it runs PyTorch's side of the benchmark;
# CORNET_KIT (default .gpu-kit/kit.tar.xz; unpacked beside itself); CORNET_PROOF_NVIDIA_SMI
# (default nvidia-smi).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export python=${CORNET_PROOF_PYTHON:-python3}
export smi=${CORNET_PROOF_NVIDIA_SMI:-nvidia-smi}
export kit=${CORNET_KIT:-$here/.gpu-kit/kit.tar.xz}
export unpacked=$(dirname "$kit")/unpacked
export work=$(dirname "$kit")/work
export bin=$unpacked/bin tests=$unpacked/tests
export CORNET_FIXTURES=$here/tests/fixtures
# Colour escapes in the logs would only get in the way of reading them.
export NO_COLOR=1

# The executables the kit holds, and the GPU tests in each (libtest name filters).
kit_files=(bin/cornet-trainer bin/cornet-data tests/cornet-model-cornet_model
    tests/cornet-trainer-cornet_trainer tests/cornet-trainer-tests)

report() { "$python" "$here/scripts/gpu_report.py" "$out"; }

# -- Steps: each runs as `gpu_proof.sh --step NAME` under `timeout`, its output in its log; a
# -- line it writes to $summary becomes its summary in the report.

step_kit() {
    rm -rf "$unpacked" && mkdir -p "$unpacked" || return 1
    # Python's tarfile rather than tar -J: xz is not on every machine, python3 is.
    "$python" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
        "$kit" "$unpacked" || return 1
    (cd "$unpacked" && sha256sum --check --strict SHA256SUMS) || return 1
    for file in "${kit_files[@]}"; do
        [ -x "$unpacked/$file" ] || { echo "the kit lacks $file"; return 1; }
    done
    cp "$unpacked/KIT.json" "$out/results/kit.json" || return 1
    "$python" -c 'import json, sys; kit = json.load(open(sys.argv[1]))
print("commit {commit}, built {built}".format(**kit))' "$unpacked/KIT.json" >"$summary"
}

step_libraries() {
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    local file missing=""
    for file in "${kit_files[@]}"; do
        echo "== $file"
        ldd "$unpacked/$file" | tee "$work/ldd.txt" || return 1
        missing+=" $(awk '/not found/ {print $1}' "$work/ldd.txt" | xargs)"
    done
    missing=$(xargs -n1 <<<"$missing" | sort -u | xargs)
    if [ -n "$missing" ]; then
        echo "not found: $missing" | tee "$summary"
        return 1
    fi
    echo "every library resolves" >"$summary"
}

step_gpu() {
    if ! command -v "$smi" >/dev/null; then
        echo "no GPU: $smi is not here" | tee "$summary"
        return 2
    fi
    local line
    if ! line=$("$smi" --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits -i 0) ||
        [ -z "$line" ]; then
        echo "no GPU: $smi lists none" | tee "$summary"
        return 2
    fi
    "$smi"
    local cuda
    cuda=$("$smi" | grep -o 'CUDA Version: [0-9.]*' | awk '{print $3}')
    "$python" -c 'import json, sys
name, driver, memory = [f.strip() for f in sys.argv[1].split(",")]
json.dump({"name": name, "driver": driver, "cuda": sys.argv[2], "memory_mib": int(memory),
           "date": sys.argv[3]}, open(sys.argv[4], "w"))
print(f"{name}, driver {driver}, CUDA {sys.argv[2]}")' \
        "$line" "$cuda" "$(date -u +%FT%TZ)" "$out/results/gpu.json" >"$summary"
}

# One test executable of the kit, filtered to its GPU tests. On a GPU machine a test that
# skips for want of a device is a failure, and so is a filter that selects nothing.
run_gpu_tests() {
    local executable=$1
    shift
    local log=$work/$(basename "$executable").log
    "$tests/$executable" --test-threads 1 "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    if grep -q '^no CUDA device' "$log"; then
        echo "skipped for want of a CUDA device: $(grep -h '^no CUDA device' "$log" | sort -u |
            tr '\n' ' ')" | tee "$summary"
        return 1
    fi
    local passed
    passed=$(grep -oE 'test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
    if [ "$rc" != 0 ] || [ "$passed" = 0 ]; then
        echo "failed ($(grep -E '^test .* FAILED$' "$log" | awk '{print $2}' | tr '\n' ' '))" |
            tee "$summary"
        return 1
    fi
    echo "$passed passed" >"$summary"
}

step_tests_model() { run_gpu_tests cornet-model-cornet_model conv_cudnn groups_on_cuda; }
step_tests_nccl() { run_gpu_tests cornet-trainer-cornet_trainer nccl::; }
step_tests_parity() { run_gpu_tests cornet-trainer-tests sgd_parity::on_cuda::; }

train_smoke() {
    local device=$1
    rm -rf "$work/smoke-$device"
    "$bin/cornet-trainer" --config configs/smoke.yaml --set "train.device=$device" \
        -o "$work/smoke-$device" || return 1
    mkdir -p "$out/smoke"
    cp "$work/smoke-$device/records.jsonl" "$out/smoke/records-$device.jsonl"
    [ -f "$work/smoke-$device/final.safetensors" ] || { echo "no final weights"; return 1; }
}

step_smoke_cuda() {
    train_smoke cuda || return 1
    echo "trained to its end" >"$summary"
}

step_smoke_cpu() { train_smoke cpu; }

step_eval_cuda() {
    "$bin/cornet-trainer" eval --model Z --weights "$work/smoke-cuda/final.safetensors" \
        --data-path target/smoke-data/val --image-size 64 --device cuda >"$work/eval.json" ||
        return 1
    cat "$work/eval.json"
    "$python" -c 'import json, sys; e = json.load(open(sys.argv[1]))
print("top-1 {top1:.4f} over {images} images".format(**e))' "$work/eval.json" >"$summary"
}

# Waits for the CPU run started beside the tests, then sets the accuracies side by side: the
# GPU run's last validation within 5 points of the CPU run's, and eval of the GPU run's
# weights that validation's (give or take one image, which a near tie may tip either way
# between two GPU runs).
step_smoke_compare() {
    while [ ! -f "$work/smoke-cpu.rc" ]; do sleep 1; done
    [ "$(cat "$work/smoke-cpu.rc")" = 0 ] || { echo "the CPU run failed" | tee "$summary"; return 1; }
    "$python" - "$work" "$out/results/smoke.json" >"$summary" <<'EOF'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
def last_val(device):
    records = [json.loads(line) for line in
               (work / f"smoke-{device}" / "records.jsonl").read_text().splitlines()]
    return [r for r in records if r["phase"] == "val"][-1]["top1"]
evaluated = json.loads((work / "eval.json").read_text())
smoke = {"cuda_val_top1": last_val("cuda"), "cpu_val_top1": last_val("cpu"),
         "eval_cuda_top1": evaluated["top1"], "eval_images": evaluated["images"]}
json.dump(smoke, open(sys.argv[2], "w"))
alike = abs(smoke["cuda_val_top1"] - smoke["cpu_val_top1"]) <= 0.05
same = abs(smoke["eval_cuda_top1"] - smoke["cuda_val_top1"]) * smoke["eval_images"] <= 1 + 1e-9
apart = "" if alike else " (more than 5 points apart)"
off = "" if same else " (more than one image off the GPU run's validation)"
print(f"val top-1 {smoke['cuda_val_top1']:.4f} on cuda, {smoke['cpu_val_top1']:.4f} on the CPU"
      f"{apart}; eval {smoke['eval_cuda_top1']:.4f}{off}")
sys.exit(0 if alike and same else 1)
EOF
}

# Polls the GPU's memory in use every 20 ms while "$@" runs (its stdout passes through) and
# writes the peak above what was in use before, in MiB, to $work/peak.
with_gpu_memory_peak() {
    local before poll=$work/poll.txt
    before=$("$smi" --query-gpu=memory.used --format=csv,noheader,nounits -i 0)
    "$smi" --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 20 >"$poll" &
    local poller=$!
    "$@"
    local rc=$?
    kill "$poller" 2>/dev/null
    wait "$poller" 2>/dev/null
    echo $(($(sort -n "$poll" | tail -1) - before)) >"$work/peak"
    return $rc
}

# Ours, then PyTorch's, on the same (model, batch, precision), each line appended to
# results/bench.jsonl with the tool, the peak memory and the FLOPs, and the report redrawn.
bench_pair() {
    local arch=$1 batch=$2 precision=$3 tool line
    local args=(--device cuda --model "$arch" --batch-size "$batch" --precision "$precision"
        --image-size 224 --steps 5 --warmup 2)
    for tool in cornet-rs pytorch; do
        echo "== $tool CORnet-$arch, batch $batch, $precision"
        if [ $tool = cornet-rs ]; then
            line=$(with_gpu_memory_peak timeout --foreground 60 "$bin/cornet-trainer" bench "${args[@]}" | tail -1)
        else
            line=$(with_gpu_memory_peak timeout --foreground 60 "$python" scripts/pytorch_cornet_bench.py \
                "${args[@]}" | tail -1)
        fi
        echo "$line"
        "$python" -c 'import json, sys
run = json.loads(sys.argv[1])
run.update(tool=sys.argv[2], arch=sys.argv[3], peak_gpu_mib=int(open(sys.argv[4]).read()))
print(json.dumps(run))' "$line" "$tool" "$arch" "$work/peak" >>"$out/results/bench.jsonl" ||
            echo "$tool failed on CORnet-$arch, batch $batch, $precision" >>"$work/bench-failures"
        report
    done
}

step_bench() {
    rm -f "$work/bench-failures"
    for config in "Z 128" "RT 128" "S 128" "S 256"; do
        for precision in bf16 f32; do
            # shellcheck disable=SC2086
            bench_pair $config "$precision"
        done
    done
    if [ -f "$work/bench-failures" ]; then
        tr '\n' ';' <"$work/bench-failures" | tee "$summary"
        return 1
    fi
    echo "$(wc -l <"$out/results/bench.jsonl") runs" >"$summary"
}

step_loader() {
    local images=$work/jpegs
    [ -d "$images" ] || "$bin/cornet-data" generate --out "$images" --classes 16 \
        --per-class 125 || return 1
    for workers in 4 8 15; do
        local line
        line=$(timeout --foreground 60 "$bin/cornet-data" bench --data "$images" --workers "$workers" \
            --batch-size 128 --epochs 2 --image-size 224 | tee /dev/stderr | tail -1)
        "$python" -c 'import json, sys
print(json.dumps({"workers": int(sys.argv[1]), "images_per_sec": float(sys.argv[2].split()[1])}))' \
            "$workers" "$line" >>"$out/results/loader.jsonl" || return 1
        report
    done
    echo "4, 8 and 15 workers" >"$summary"
}

if [ "${1:-}" = --step ]; then
    export summary=$work/$2.summary
    "step_$2"
    exit
fi

# -- The proof.

if [ $# != 1 ]; then
    echo "usage: scripts/gpu_proof.sh OUT_DIR   (from the repository's root, the kit in .gpu-kit/)" >&2
    exit 3
fi
cd "$here"
export out
out=$(mkdir -p "$1" && cd "$1" && pwd) || exit 3
mkdir -p "$out/logs" "$out/results" "$work"
rm -f "$out/steps.jsonl" "$out"/results/*.json* "$work"/*.summary "$work/smoke-cpu.rc"
if [ ! -f "$kit" ]; then
    echo "no kit at $kit: build it with scripts/gpu_kit.sh on a machine with Rust" >&2
    exit 3
fi

# CUDA 13's libraries (cudart, cuBLAS, cuRAND, NVRTC, NCCL, cuDNN) from the interpreter's
# nvidia wheels, as torch itself finds them.
wheel_libs=$("$python" -c 'import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit(0)
print(":".join(sorted({os.path.dirname(p) for root in nvidia.__path__
                       for p in glob.glob(os.path.join(root, "*", "lib", "lib*.so*"))})))')
[ -n "$wheel_libs" ] || echo "note: $python has no nvidia wheels; libraries come from the loader path" >&2
export LD_LIBRARY_PATH="$wheel_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

budget=${CORNET_PROOF_BUDGET_S:-470}
failed=0
# step NAME LIMIT: runs step_NAME under LIMIT seconds (less if the budget has less left),
# records its status, and returns its exit status.
step() {
    local name=$1 limit=$2 rc=0 status start=$SECONDS
    local left=$((budget - SECONDS))
    if ((left < 5)); then
        status=skipped
        echo "out of the proof's time" >"$work/$name.summary"
        limit=0 rc=124
    else
        ((limit > left)) && limit=$left
        echo "== $name (at most ${limit} s)" >&2
        timeout --kill-after 5 "$limit" bash "$here/scripts/gpu_proof.sh" --step "$name" >"$out/logs/$name.log" 2>&1 || rc=$?
        case $rc in
            0) status=passed ;;
            2) status="no GPU" ;;
            124 | 137) status="timed out" ;;
            *) status=failed ;;
        esac
    fi
    [ "$status" = passed ] || failed=1
    "$python" -c 'import json, sys
name, status, seconds, limit, summary = sys.argv[1:]
print(json.dumps({"name": name, "status": status, "seconds": int(seconds), "limit": int(limit),
                  "summary": open(summary).read().strip() if summary else ""}))' \
        "$name" "$status" $((SECONDS - start)) "$limit" \
        "$([ -f "$work/$name.summary" ] && echo "$work/$name.summary")" >>"$out/steps.jsonl"
    report
    echo "   $status in $((SECONDS - start)) s$([ -f "$work/$name.summary" ] &&
        echo ": $(cat "$work/$name.summary")")" >&2
    return $rc
}

step kit 60 || { echo "the kit did not unpack: see $out/logs/kit.log" >&2; exit 1; }
step libraries 30
step gpu 20
case $? in
    0) ;;
    2)
        echo "no GPU: stopped before any GPU step (report in $out/gpu_report.md)" >&2
        exit 2
        ;;
    *) exit 1 ;;
esac

# The CPU's smoke run goes alongside the GPU tests (it only has to finish before the
# benchmarks, whose timings it would disturb).
(timeout 240 bash "$here/scripts/gpu_proof.sh" --step smoke_cpu >"$out/logs/smoke_cpu.log" 2>&1
    echo $? >"$work/smoke-cpu.rc") &

step tests_model 90
step tests_nccl 45
step tests_parity 120
step smoke_cuda 120 && step eval_cuda 45
step smoke_compare 120
step bench 240
step loader 60
wait
echo "report: $out/gpu_report.md" >&2
exit $failed
