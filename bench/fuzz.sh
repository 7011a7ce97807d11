#!/bin/sh
# Fuzzes `buildspec::check` + `plan()` + `render()` on stable Rust, seeded with the real corpus.
#
#   bench/fuzz.sh            # 10 minutes
#   bench/fuzz.sh 3600       # an hour
#
# Needs cargo-fuzz (`cargo install cargo-fuzz -j1`). New inputs go to fuzz/corpus/check, crashes
# to fuzz/artifacts/check (both ignored by git). `--sanitizer none` is what makes stable Rust
# enough; for AddressSanitizer, drop it and set RUSTC_BOOTSTRAP=1.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-600}
seeds="tests/corpus/real tests/corpus/invalid"
for dir in /work/shared/corpus/buildspecs/real /work/shared/corpus/buildspecs/suspect-invalid; do
    if [ -d "$dir" ]; then seeds="$seeds $dir"; fi
done
mkdir -p fuzz/corpus/check
# CARGO_BUILD_JOBS=1 keeps the build to one job (`-j` of `cargo fuzz run` is libFuzzer's jobs).
# shellcheck disable=SC2086 # the seed directories are separate words
CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} exec cargo fuzz run check --sanitizer none fuzz/corpus/check $seeds -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=5 -rss_limit_mb=1024
