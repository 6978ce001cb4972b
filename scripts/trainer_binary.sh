#!/usr/bin/env bash
# Prints the cornet-trainer binary the check scripts run: $CORNET_TRAINER when set, else this
# checkout's debug build (built first, its output on stderr).
set -euo pipefail
if [ -n "${CORNET_TRAINER:-}" ]; then
    echo "$CORNET_TRAINER"
    exit
fi
here=$(cd "$(dirname "$0")/.." && pwd)
(cd "$here" && cargo build --workspace --quiet) >&2
echo "$("$here/scripts/target_dir.sh")/debug/cornet-trainer"
