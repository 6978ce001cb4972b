#!/usr/bin/env bash
# The GPU kit: what a GPU machine without a Rust toolchain needs to run scripts/gpu_proof.sh,
# small enough to travel with the repository (the GPU machine receives at most 64 MiB, the
# repository's own files included; this keeps the whole under 60 MiB).
#
#   scripts/gpu_kit.sh                         # build, check and pack (about 25 min on 2 cores)
#   CORNET_KIT_SKIP_BUILD=1 scripts/gpu_kit.sh # pack what the last build left
#
# It builds the trainer, cornet-data and the test executables with cuda,cudnn,nccl and checks
# them without a GPU (scripts/check_gpu_build.sh), then packs the stripped binaries and the
# three test executables that hold GPU tests into .gpu-kit/kit.tar.xz, with their SHA-256s
# and where they came from (KIT.json). It ends with the proof's dry run: the kit unpacks here,
# every library resolves against the CUDA 13.0 wheels and the driver stub, and the proof stops
# with "no GPU" before any GPU step.
set -euo pipefail
cd "$(dirname "$0")/.."
limit_mib=60
venv=${CORNET_CUDA_VENV:-$HOME/.cache/cornet-rs/cuda-13.0}
[ -n "${CORNET_KIT_SKIP_BUILD:-}" ] || scripts/check_gpu_build.sh
built=$(scripts/target_dir.sh)/gpu

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/tests"
cp "$built/cornet-trainer" "$built/cornet-data" "$stage/bin/"
for name in cornet-model-cornet_model cornet-trainer-cornet_trainer cornet-trainer-tests; do
    cp "$built/tests/$name" "$stage/tests/"
done

# Managed (unified) memory can hang the GPU machine's GPU: no executable may even import it.
if managed=$(nm -D --undefined-only "$stage"/bin/* "$stage"/tests/* 2>/dev/null |
    grep -E 'cuMemAllocManaged|cudaMallocManaged'); then
    echo "the kit's executables import CUDA managed memory, which the GPU machine forbids:" >&2
    echo "$managed" >&2
    exit 1
fi

commit=$(git rev-parse HEAD)
git diff --quiet HEAD || commit="$commit, with uncommitted changes"
python3 -c 'import json, sys
json.dump({"commit": sys.argv[1], "built": sys.argv[2], "rustc": sys.argv[3]},
          open(sys.argv[4], "w"))' "$commit" "$(date -u +%FT%TZ)" "$(rustc -V)" "$stage/KIT.json"
(cd "$stage" && sha256sum KIT.json bin/* tests/* >SHA256SUMS)

# One xz stream whose dictionary spans the whole archive: the executables all carry candle's
# PTX kernels, and every copy after the first then costs next to nothing. One thread, because
# xz's threads cut the stream into blocks that cannot see each other.
dict_mib=$(($(du -sm "$stage" | cut -f1) + 1))
mkdir -p .gpu-kit
tar -C "$stage" -cf - SHA256SUMS KIT.json bin tests |
    xz -T1 -9e --lzma2=preset=9e,dict=${dict_mib}MiB >.gpu-kit/kit.tar.xz.part
mv .gpu-kit/kit.tar.xz.part .gpu-kit/kit.tar.xz

# What travels: every file git tracks or would add (untracked, not ignored), and the kit.
travelling=$(git ls-files -z --cached --others --exclude-standard | python3 -c 'import os, sys
names = {n for n in sys.stdin.buffer.read().split(b"\0") if n}
print(sum(os.lstat(n).st_size for n in names if os.path.lexists(n)))')
kit_bytes=$(stat -c %s .gpu-kit/kit.tar.xz)
mib() { python3 -c "print(f'{$1 / 2**20:.1f}')"; }
total=$((travelling + kit_bytes))
echo "kit: .gpu-kit/kit.tar.xz, $(mib "$kit_bytes") MiB; with the repository's" \
    "$(mib "$travelling") MiB that travel: $(mib "$total") MiB of $limit_mib" >&2
if ((total >= limit_mib * 2 ** 20)); then
    rm .gpu-kit/kit.tar.xz
    echo "too big to send: removed the kit. Carry fewer or smaller files." >&2
    exit 1
fi

# The dry run: the proof against the CUDA 13.0 wheels and the driver stub must stop at the
# GPU check, and with nothing missing before it.
dry_run=$(mktemp -d)
status=0
LD_LIBRARY_PATH="$venv/link" CORNET_PROOF_PYTHON="$venv/bin/python" \
    scripts/gpu_proof.sh "$dry_run" || status=$?
if [ $status != 2 ]; then
    echo "the proof's dry run ended with status $status, not 2 (no GPU): see $dry_run" >&2
    exit 1
fi
rm -rf "$dry_run"
cat >&2 <<EOF
dry run: the kit unpacks, every library resolves, the proof stops at "no GPU".

To send: the repository's files and .gpu-kit/ (with the device tool: carry [".gpu-kit"]).
To run there, from the repository's root, under a 9-minute limit:
    scripts/gpu_proof.sh OUT_DIR          # OUT_DIR/gpu_report.md, gpu_report.json, logs/
EOF
