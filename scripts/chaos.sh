#!/bin/bash
# The fleet's fault and size runs at the sizes of the fleet issue (CI runs them smaller):
#   - 4 daemons x 8 clients x 1,250 named allocations over their sockets on one /18: each client
#     runs its 500 names in rounds on the next daemon, removing them in between (40,000
#     allocations of 16,000 names), then a checker reads etcd at one revision;
#   - 1,000 names moved between 4 daemons 5 times each or more while an etcd member is SIGKILLed
#     every 15 s all through the run (down 5 s), and in turn a daemon is SIGKILLed, the leader is
#     SIGSTOPped for 10 s, etcd is compacted and two of three members are down for 30 s.
#   - partitions (each etcd member and each host in a network namespace of its own on one
#     switch): 8 clients move names between 4 hosts, one of which reaches etcd through proxies
#     that lose every 10th transaction's answer after commit, for >= 10,000 allocations while
#     in turn a minority member's side and a host are cut off, the member a host talks to is
#     SIGSTOPped, the leader's port goes down and a host is SIGKILLed and restarted (10 s each);
#     every answer goes through the history checker (tests/support/history_checker.h), then the
#     partition cases print their figures (refusal and heal times, p99 under a hung member).
# Needs root, etcd (scripts/install-deps.sh --test) and a build (scripts/build.sh). About 25
# minutes; prints each test's report lines. Usage: scripts/chaos.sh [BUILD_DIR]
#   CHAOS_PARTITION_ALLOCATIONS=N (default 10000) sizes the partition run; CHAOS_ONLY=partition
#   runs the partition part only.
set -euo pipefail
build=${1:-build}
tests="$build/tests/etcd_test"
[ -x "$tests" ] || { echo "chaos.sh: $tests is missing: build first (scripts/build.sh)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "chaos.sh: needs root (private network namespaces)" >&2; exit 1; }

partition_run() {
  local allocations=${CHAOS_PARTITION_ALLOCATIONS:-10000}
  local log=${TMPDIR:-/tmp}/chaos-partition-$(date +%Y%m%d-%H%M%S).log
  local report='^\[ +(OK|FAILED) |^partition: seed|^(chaos-partition|minority|cut-off|cut-off-host|hung member|lost answers|clock jump):|Failure|actual|violations|^  (address|name|lost|stray)'
  echo "== partitions, hung members, lost answers and moves: $allocations allocations, faults of 10 s (full output: $log)"
  SMV_PARTITION_ALLOCATIONS=$allocations SMV_PARTITION_FAULT_SECONDS=10 "$tests" --gtest_filter='PartitionChaos.*' 2>&1 |
    tee "$log" | grep -E "$report" || failed=1
  echo "== partition cases: minority side, host cut off, hung member (20 s), lost answers, clock jump"
  SMV_HUNG_SECONDS=20 "$tests" --gtest_filter='PartitionCases.*:PartitionTest.*' 2>&1 | tee -a "$log" |
    grep -E "$report" || failed=1
}
failed=0
partition_run
[ "${CHAOS_ONLY:-}" = partition ] && exit $failed

echo "== 4 nodes x 8 clients x 1,250 named allocations on one /18"
SMV_FLEET_PER_CLIENT=1250 "$tests" --gtest_filter='FleetSocketTest.FourNodes*' 2>&1 |
  grep -E '^\[ +(OK|FAILED) |named allocations|Failure|problems'
echo "== 1,000 names x 5 moves under faults (issue timings)"
SMV_CHAOS_NAMES=1000 SMV_CHAOS_MOVES=5 SMV_CHAOS_FULL=1 "$tests" --gtest_filter='FleetChaosTest.*' 2>&1 |
  grep -E '^\[ +(OK|FAILED) |^chaos:|Failure|problems|Which is|Expected'
