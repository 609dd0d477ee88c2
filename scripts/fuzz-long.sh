#!/bin/bash
# The long fuzz run, not part of CI: every target for RUNS inputs (default 10,000,000) of up to
# the 1 MiB body limit, from one RelWithDebInfo fuzz build of its own (ASan + UBSan), on the corpus
# scripts/fuzz.sh seeds. Prints a "figures" line per target (executions, seconds, executions per
# second, crashes, max_len), kept in BUILD/fuzz-long.figures; docs/fuzzing.md records them.
# Usage: scripts/fuzz-long.sh [RUNS]
# SMV_FUZZ_BUILD_DIR=DIR: the fuzz build to use or make (default build-fuzz-long);
# SMV_FUZZ_TARGETS="fuzz_plugin_api ...": only those targets.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000000}
build=${SMV_FUZZ_BUILD_DIR:-build-fuzz-long}
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DSMV_FUZZ=ON -DBUILD_TESTING=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
set +e
SMV_FUZZ_BUILD_DIR=$build SMV_FUZZ_RUNS=$runs scripts/fuzz.sh | tee "$build/fuzz-long.log"
status=${PIPESTATUS[0]}
set -e
grep '^figures ' "$build/fuzz-long.log" > "$build/fuzz-long.figures" || true
exit "$status"
