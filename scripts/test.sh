#!/bin/bash
# Builds and runs the test tiers (docs/testing.md):
#   unit      no root, no kernel, no dockerd
#   netns, protocol, etcd, vm, e2e, package: root (network namespaces, etcd, QEMU, dockerd)
# As root: installs every package the tiers need first. With no arguments (CI: .ci/run) it runs
# every tier, then the unit, netns and protocol tiers under ASan + UBSan, then 30 s of fuzzing.
# As another user: installs nothing (it names the missing build packages and the command that
# installs them) and runs the unit tier only; arguments narrow it further (e.g. -R Pool).
# Usage: scripts/test.sh [ctest arguments, e.g. -L unit]
set -euo pipefail
cd "$(dirname "$0")/.."
# How long each stage took, for keeping CI within its time budget.
stage() { echo "test.sh: $1 done at $((SECONDS / 60))m$((SECONDS % 60))s"; }
root=no; [ "$(id -u)" -eq 0 ] && root=yes
only_unit=()
if [ $root = yes ]; then
  scripts/install-deps.sh --test
  stage "install-deps"
else
  scripts/install-deps.sh --check
  echo "test.sh: not root: the unit tier only; the netns, protocol, etcd, vm, e2e and package tiers," \
    "the sanitizer pass and fuzzing need root (sudo scripts/test.sh)"
  # With several -L, ctest runs the tests that match each: "-L netns" selects nothing here.
  only_unit=(-L '^unit$')
  build_dir=${BUILD_DIR:-build}
  if [ -e "$build_dir" ] && [ ! -w "$build_dir" ]; then
    echo "test.sh: $build_dir is not writable by $(id -un) (built as root?): BUILD_DIR=build-$(id -un) scripts/test.sh" >&2
    exit 1
  fi
fi
# The format and the 60-line function limit (clang-tidy, on a configure-only build directory).
if [ $root = yes ] || { command -v clang-format-14 && command -v clang-tidy-14; } >/dev/null; then
  scripts/check-format.sh
  stage "format and function-length check"
else
  echo "test.sh: no clang-format-14 or clang-tidy-14 here: the format and function-length checks are left to CI" \
    "(sudo scripts/install-deps.sh --test)"
fi
# The benchmarks are built too: CI's tiny benchmark runs reuse this build (bench/build-dir.sh).
# A unity build (one translation unit per target) halves the compile time; so does it for the
# sanitizer build below (its CPU time: 20 min file by file, 9 min unity, on the 2-core CI machine).
scripts/build.sh -DSMV_BENCH=ON -DCMAKE_UNITY_BUILD=ON
stage "build"
set -o pipefail
# An installed static-macvlan (scripts/install.sh or the .deb) is left alone: every tier uses its
# own namespaces, sockets, state directories and logs. What it is (daemon PID, the files on the
# default paths) is taken now and must be the same when the tests end, whatever their result.
installed_plugin() {
  local pid f
  pid=$(cat /run/static-macvlan.pid 2>/dev/null || systemctl show -p MainPID --value static-macvlan 2>/dev/null || true)
  # Running: any state but Z (a zombie is a daemon that ended).
  if [ -z "$pid" ] || [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)" = Z ]; then pid=none; fi
  echo -n "daemon pid $pid"
  for f in /var/lib/static-macvlan/data.mdb /var/log/static-macvlan.log /run/docker/plugins/static-macvlan.sock; do
    if [ -e "$f" ]; then echo -n ", $f (inode $(stat -c %i "$f"))"; fi
  done
}
installed_before=$(installed_plugin)
case "$installed_before" in
  "daemon pid none") ;;
  *) echo "test.sh: installed static-macvlan here: $installed_before; the tests leave it alone" ;;
esac
installed_intact() {
  local now; now=$(installed_plugin)
  [ "$now" = "$installed_before" ] && return 0
  echo "test.sh: the installed static-macvlan changed during the tests: before: $installed_before; now: $now" >&2
  exit 1
}
log=$(mktemp); trap 'rm -f "$log"; installed_intact' EXIT
ctest --test-dir "${BUILD_DIR:-build}" --no-tests=error --output-on-failure -j"$(nproc)" "${only_unit[@]}" "$@" | tee "$log"
stage "ctest"
if [ $# -eq 0 ] && [ $root = yes ]; then
  # The unit, kernel and protocol tiers again under AddressSanitizer + UndefinedBehaviorSanitizer
  # (the protocol tier runs the sanitized daemon, whose exit status the tests check). Built with
  # clang and the libFuzzer targets, so the fuzzing below needs no build of its own.
  BUILD_DIR=build-asan scripts/build.sh -DCMAKE_CXX_COMPILER=clang++ -DSMV_SANITIZE=ON -DSMV_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_UNITY_BUILD=ON
  stage "sanitizer build"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --no-tests=error --output-on-failure -j"$(nproc)" -L 'unit|netns|protocol' | tee -a "$log"
  stage "sanitizer ctest"
  # Bounded fuzzing of request decoding and option/CIDR parsing (a long run: scripts/fuzz.sh 3600).
  SMV_FUZZ_BUILD_DIR=build-asan scripts/fuzz.sh "${SMV_FUZZ_SECONDS:-30}"
  stage "fuzz"
  fuzz_targets=3  # scripts/fuzz.sh runs fuzz_plugin_api, fuzz_parsers, fuzz_http_body
fi
# Reaching this line means every tier passed (set -e): one closing line for all of them.
total=$(grep -o 'tests failed out of [0-9]*' "$log" | awk '{s += $5} END {print s + 0}')
echo "test.sh: $((total + ${fuzz_targets:-0})) passed, 0 failed"
