#!/bin/bash
# The fleet's fault and size runs at the sizes of the fleet issue (CI runs them smaller):
#   - 4 daemons x 8 clients x 500 allocations over their sockets on one /18 (16,000 of its
#     16,382 addresses: the 1,250 per client would not fit without releases), then a
#     checker reads etcd at one revision;
#   - 1,000 names moved between 4 daemons 5 times each or more while etcd members are SIGKILLed
#     (down 15 s), the leader is SIGSTOPped for 10 s, etcd is compacted, a daemon is SIGKILLed
#     and two of three members are down for 30 s.
# Needs root, etcd (scripts/install-deps.sh --test) and a build (scripts/build.sh). About 10
# minutes; prints each test's report lines. Usage: scripts/chaos.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
tests="$build/tests/etcd_test"
[ -x "$tests" ] || { echo "chaos.sh: $tests is missing: build first (scripts/build.sh)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "chaos.sh: needs root (private network namespaces)" >&2; exit 1; }

echo "== 4 nodes x 8 clients x 500 named allocations on one /18"
SMV_FLEET_PER_CLIENT=500 "$tests" --gtest_filter='FleetSocketTest.FourNodes*' 2>&1 |
  grep -E '^\[ +(OK|FAILED) |allocations in|Failure|problems' 
echo "== 1,000 names x 5 moves under faults (issue timings)"
SMV_CHAOS_NAMES=1000 SMV_CHAOS_MOVES=5 SMV_CHAOS_FULL=1 "$tests" --gtest_filter='FleetChaosTest.*' 2>&1 |
  grep -E '^\[ +(OK|FAILED) |^chaos:|Failure|problems|Which is|Expected'
