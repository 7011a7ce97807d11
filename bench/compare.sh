#!/usr/bin/env bash
# Compares two `buildspec` binaries on the engine's common cases, run alternately in the same
# session so that the machine's noise falls on both: 300 one-command builds two at a time (state
# on tmpfs), one build of 2,000 compat commands, and one of 2,000 persistent commands. Prints each
# case's median wall time for both, and NEW / OLD.
#
#   bench/compare.sh OLD_BINARY NEW_BINARY [ROUNDS]
#
# Build the old one from another checkout (`git worktree add /tmp/base <commit>`, then
# `CARGO_TARGET_DIR=/tmp/base-target cargo build --release -p buildspec-cli` there).
set -euo pipefail
old=$(realpath "${1:?old binary}")
new=$(realpath "${2:?new binary}")
rounds=${3:-5}
work=$(mktemp -d "${BUILDSPEC_BENCH_DIR:-/dev/shm}/compare.XXXXXX")
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/specs"
for i in $(seq 1 300); do
    printf 'version: 0.2\nphases:\n  build:\n    commands:\n      - echo build %s\n' "$i" \
        > "$work/specs/b$i.yml"
done
{
    printf 'version: 0.2\nphases:\n  build:\n    commands:\n'
    for i in $(seq 1 2000); do printf '      - X%s=1\n' $((i % 7)); done
} > "$work/long.yml"

# Milliseconds one run of "$@" takes.
ms() {
    local start end
    start=$(date +%s%N)
    "$@" > "$work/last.out" 2>&1 || cat "$work/last.out" >&2
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_case() {
    local name=$1
    shift
    local o n
    : > "$work/old.times"
    : > "$work/new.times"
    for _ in $(seq 1 "$rounds"); do
        rm -rf "$work/state-old" "$work/state-new"
        ms "$old" "$@" --state-dir "$work/state-old" >> "$work/old.times"
        ms "$new" "$@" --state-dir "$work/state-new" >> "$work/new.times"
    done
    o=$(median < "$work/old.times")
    n=$(median < "$work/new.times")
    awk -v name="$name" -v o="$o" -v n="$n" \
        'BEGIN {printf "%-44s old %6d ms   new %6d ms   new/old %.2f\n", name, o, n, n / o}'
}

cd "$work"
run_case "300 one-command builds, --jobs 2" run specs --jobs 2 --in-place --source "$work"
run_case "2,000 commands, compat" run long.yml --source "$work"
run_case "2,000 commands, persistent" run long.yml --session persistent --source "$work"
