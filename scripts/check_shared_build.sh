#!/usr/bin/env bash
# The README's two commands, `cargo run -p cornet-trainer` and `cargo test --workspace`, share
# their dependencies' builds only if cargo resolves the same features for every third-party
# crate in both (a dev-dependency that turns on one more feature of a crate low in the graph
# rebuilds everything above it, candle included). Compares the two resolutions, building
# nothing; exits 1 naming the crates that differ.
#
#   scripts/check_shared_build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
features() { # ARGS...: "crate version [features]" of every non-workspace crate built
    cargo tree "$@" -e normal,build -f '{p} [{f}]' --prefix none |
        grep -v '^cornet-' | sed 's/ (\*)$//; s/ (proc-macro)//' | sort -u
}
run=$(features -p cornet-trainer)
test=$(features --workspace -e dev)
# Crates the tests alone need are built for them alone; crates both need must agree.
differing=$(comm -23 <(echo "$run") <(echo "$test"))
if [ -n "$differing" ]; then
    echo "these crates resolve to other features for \`cargo run -p cornet-trainer\` than for" >&2
    echo "\`cargo test --workspace\` (name the tests' features in cornet-trainer's dependencies):" >&2
    echo "$differing" >&2
    exit 1
fi
echo "cargo run -p cornet-trainer and cargo test --workspace share every dependency's build"
