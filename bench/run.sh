#!/bin/sh
# Runs the `check` benchmark: throughput over 1,000 real buildspecs beside two baselines, hostile
# inputs, and the scaling of check and render with the number of diagnostics.
#
#   bench/run.sh                      # everything
#   bench/run.sh throughput           # one section: throughput, hostile or scaling
#   bench/run.sh "billion laughs"     # the hostile cases whose name contains the text
#
# BUILDSPEC_BENCH_CORPUS=dir[:dir...] adds throughput rows for more directories of *.yml.
# The build uses one job (-j1); the benchmark itself is single-threaded.
set -eu
cd "$(dirname "$0")/.."
exec cargo bench -j1 -p buildspec --bench check -- "$@"
