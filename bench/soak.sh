#!/bin/bash
# Soak (a benchmark, never a timed test): RUNS `docker run --rm` cycles on a private dockerd 20.10
# (tests/e2e/lib.sh), then CYCLES network create/remove cycles with a container start and stop
# over the plugin socket (bench_tool cycles). After each phase it records the plugin's RSS, open
# file descriptors and threads, the host's macvlan links, and the stored leases, endpoints and
# networks (static-macvlan fsck). Leaks show as counts that do not come back to the baseline.
# Usage: sudo bench/soak.sh [RUNS CYCLES STREAMS]   (default 5000 5000 4; prints raw "SOAK ..." lines)
# The runs go in STREAMS parallel streams of `docker run --rm` (one run takes about 1 s on a 2-core
# machine), each cycling through 12 container names, so reservations stay bounded as they do for
# a user who re-creates the same containers.
set -euo pipefail
runs=${1:-5000}; cycles=${2:-5000}; streams=${3:-4}
cd "$(dirname "$0")/.."
. bench/build-dir.sh
export SMV=$B/static-macvlan
tool=$B/bench/bench_tool
. tests/e2e/lib.sh
trap e2e_teardown EXIT
e2e_setup >/dev/null
d network create -d static-macvlan --ipam-driver static-macvlan --subnet 198.51.100.0/24 -o parent=eth1 soak >/dev/null

# One line of what leaks would show in, from the plugin's /proc and its store.
snapshot() {
  local pid; pid=$(plugin_pid)
  local rss fds threads links state
  rss=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status")
  threads=$(awk '$1 == "Threads:" {print $2}' "/proc/$pid/status")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  links=$(in_host ip -o link show type macvlan | grep -c ' smv' || true)
  state=$(in_docker_ns "$SMV" fsck --state-dir "$E2E_DIR/state" | head -1)
  echo "SOAK $1 rss_kib=$rss fds=$fds threads=$threads smv_links=$links $state"
}

stream() {  # stream S COUNT
  local i
  for i in $(seq "$2"); do
    d run --rm --name "soak-$1-$((i % 12))" --network soak smv-bb true >/dev/null || { echo "SOAK run failed stream=$1 i=$i" >&2; return 1; }
    if [ "$1" = 0 ] && [ $((i % 250)) -eq 0 ]; then snapshot "runs=$((i * streams))"; fi
  done
}
for s in $(seq 0 $((streams - 1))); do stream "$s" 12; done  # every name once: the baseline has them all
snapshot baseline
t0=$(date +%s)
pids=()
for s in $(seq 0 $((streams - 1))); do stream "$s" $((runs / streams)) & pids+=($!); done
wait "${pids[@]}"
echo "SOAK runs_done=$(( runs / streams * streams )) seconds=$(( $(date +%s) - t0 ))"
snapshot after_runs
t0=$(date +%s)
in_docker_ns "$tool" cycles /run/docker/plugins/static-macvlan.sock "$cycles" >/dev/null
echo "SOAK cycles_done=$cycles seconds=$(( $(date +%s) - t0 ))"
sleep 1  # the link reaper finishes its queue
snapshot after_cycles
