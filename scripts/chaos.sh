#!/bin/bash
# The fleet's fault and size runs at the sizes of the fleet issue (CI runs them smaller):
#   - 4 daemons x 8 clients x 1,250 named allocations over their sockets on one /18: each client
#     runs its 500 names in rounds on the next daemon, removing them in between (40,000
#     allocations of 16,000 names), then a checker reads etcd at one revision;
#   - 1,000 names moved between 4 daemons 5 times each or more while an etcd member is SIGKILLed
#     every 15 s all through the run (down 5 s), and in turn a daemon is SIGKILLed, the leader is
#     SIGSTOPped for 10 s, etcd is compacted and two of three members are down for 30 s.
# Needs root, etcd (scripts/install-deps.sh --test) and a build (scripts/build.sh). About 10
# minutes; prints each test's report lines. Usage: scripts/chaos.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
tests="$build/tests/etcd_test"
[ -x "$tests" ] || { echo "chaos.sh: $tests is missing: build first (scripts/build.sh)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "chaos.sh: needs root (private network namespaces)" >&2; exit 1; }

echo "== 4 nodes x 8 clients x 1,250 named allocations on one /18"
SMV_FLEET_PER_CLIENT=1250 "$tests" --gtest_filter='FleetSocketTest.FourNodes*' 2>&1 |
  grep -E '^\[ +(OK|FAILED) |named allocations|Failure|problems'
echo "== 1,000 names x 5 moves under faults (issue timings)"
SMV_CHAOS_NAMES=1000 SMV_CHAOS_MOVES=5 SMV_CHAOS_FULL=1 "$tests" --gtest_filter='FleetChaosTest.*' 2>&1 |
  grep -E '^\[ +(OK|FAILED) |^chaos:|Failure|problems|Which is|Expected'
