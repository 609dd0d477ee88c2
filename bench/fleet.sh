#!/bin/bash
# Fleet benchmarks of the etcd issue (a benchmark, never a timed test): a 3-member etcd 3.4
# cluster and NODES `serve --store etcd://` daemons in a private network namespace of their own,
# one pool requested on every node, driven over their sockets by bench_tool. Prints raw lines:
#   FLEET latency nodes=1 p50_us=.. p99_us=..   RequestAddress+ReleaseAddress pairs on one node
#   FLEET throughput nodes=N clients=C allocations_per_s=..   durable allocations, all nodes at once
# Usage: sudo bench/fleet.sh [NODES CLIENTS SECONDS PAIRS]   (default 4 8 10 2000)
# etcd runs with its defaults (fsync on, one disk shared by the 3 members), as in production.
set -euo pipefail
nodes=${1:-4}; clients=${2:-8}; seconds=${3:-10}; pairs=${4:-2000}
cd "$(dirname "$0")/.."
. bench/build-dir.sh
work=$(mktemp -d /var/tmp/smv-fleet.XXXXXX)
ns=smvfleet$$
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
# Daemons are started with `ip netns exec` itself in the background (not through this function),
# so that $! is the daemon (ip execs it) and the cleanup ends it.
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up

peers=""; store="etcd://"
for i in 0 1 2; do
  peers+="${peers:+,}m$i=http://127.0.0.1:$((23791 + 2 * i))"
  store+="$([ "$i" = 0 ] || echo ,)127.0.0.1:$((23790 + 2 * i))"
done
for i in 0 1 2; do
  client=http://127.0.0.1:$((23790 + 2 * i)); peer=http://127.0.0.1:$((23791 + 2 * i))
  ip netns exec "$ns" etcd --name "m$i" --data-dir "$work/m$i" --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "$peers" \
    --initial-cluster-state new --initial-cluster-token smv-fleet-bench >"$work/m$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 300); do
  in_ns etcdctl --endpoints "${store#etcd://}" endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done
in_ns etcdctl --endpoints "${store#etcd://}" endpoint health >/dev/null 2>&1 || { cat "$work"/m*.log >&2; exit 1; }

pool_request='{"AddressSpace":"static-macvlan-local","Pool":"198.18.0.0/18","SubPool":"","Options":{},"V6":false}'
for n in $(seq 0 $((nodes - 1))); do
  ip netns exec "$ns" "$B/static-macvlan" serve --socket "$work/n$n.sock" --state-dir "$work/n$n" --store "$store" \
    --node-name "n$n" --docker-host "unix://$work/no-engine" >"$work/n$n.log" 2>&1 &
  pids+=($!)
done
pool=""
for n in $(seq 0 $((nodes - 1))); do
  for _ in $(seq 300); do [ -S "$work/n$n.sock" ] && break; sleep 0.1; done
  pool=$(curl -sf --unix-socket "$work/n$n.sock" -d "$pool_request" http://p/IpamDriver.RequestPool |
         sed 's/.*"PoolID":"\([^"]*\)".*/\1/') || { cat "$work/n$n.log" >&2; exit 1; }
done

echo "FLEET latency nodes=1 $(in_ns "$B/bench/bench_tool" latency "$pairs" "$work/n0.sock=$pool")"
results=()
for n in $(seq 0 $((nodes - 1))); do
  in_ns "$B/bench/bench_tool" throughput "$work/n$n.sock" "$pool" "$clients" "$seconds" >"$work/t$n.out" &
  results+=($!)
done
for r in "${results[@]}"; do wait "$r"; done
total=$(cat "$work"/t*.out | grep -o 'allocations_per_s=[0-9]*' | cut -d= -f2 | awk '{s += $1} END {print s}')
echo "FLEET throughput nodes=$nodes clients=$clients allocations_per_s=$total per_node=$(cat "$work"/t*.out |
  grep -o 'allocations_per_s=[0-9]*' | cut -d= -f2 | paste -sd,)"
grep -h "refused a commit" "$work"/n*.log | wc -l | sed 's/^/FLEET refused_commits=/'
