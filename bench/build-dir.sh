# Sourced by the bench scripts: sets B to the absolute path of a build that has the benchmarks.
# Default: build-bench, a Release build made (or brought up to date) here. With
# SMV_BENCH_BUILD_DIR set, that build is used as it is: CI's tiny runs, which judge no timing,
# reuse the test build instead of compiling the project once more.
if [ -n "${SMV_BENCH_BUILD_DIR:-}" ]; then
  B=$(realpath "$SMV_BENCH_BUILD_DIR")
  [ -x "$B/bench/bench_tool" ] || {
    echo "$0: SMV_BENCH_BUILD_DIR=$SMV_BENCH_BUILD_DIR has no bench/bench_tool: configure it with -DSMV_BENCH=ON" >&2
    exit 1
  }
else
  BUILD_DIR=build-bench scripts/build.sh -DSMV_BENCH=ON -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release -DSMV_LTO=ON >/dev/null
  B=$(realpath build-bench)
fi
