#!/bin/bash
# P1 and P2 on one private dockerd (tests/e2e/lib.sh): Docker's built-in macvlan network and a
# static-macvlan network on the same parent; prints raw lines for bench/report.sh.
# Usage: SMV=... bench/docker_start.sh RUNS PARALLEL ROUNDS
# With BENCH_STORE=etcd the plugin keeps its book in a 3-member etcd 3.4 cluster started on
# loopback in the host namespace (etcd's defaults: fsync on, one disk), as a fleet host does.
# (Not SMV_STORE: that is the daemon's own variable, which the plugin started here would read.)
set -euo pipefail
runs=$1; par=$2; rounds=$3
here=$(dirname "$(realpath "$0")")
if [ "${BENCH_STORE:-lmdb}" = etcd ]; then
  SMV_SERVE_ARGS="--store etcd://127.0.0.1:23790,127.0.0.1:23792,127.0.0.1:23794 --node-name bench"
  e2e_before_plugin() {
    local i cluster=""
    for i in 0 1 2; do cluster+="${cluster:+,}m$i=http://127.0.0.1:$((23791 + 2 * i))"; done
    for i in 0 1 2; do
      nsenter --net="/run/netns/$HOST_NS" etcd --name "m$i" --data-dir "$E2E_DIR/etcd-m$i" \
        --listen-client-urls "http://127.0.0.1:$((23790 + 2 * i))" \
        --advertise-client-urls "http://127.0.0.1:$((23790 + 2 * i))" \
        --listen-peer-urls "http://127.0.0.1:$((23791 + 2 * i))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((23791 + 2 * i))" \
        --initial-cluster "$cluster" --initial-cluster-state new >"$E2E_DIR/etcd-m$i.log" 2>&1 &
    done
    for _ in $(seq 300); do
      in_host curl -sf http://127.0.0.1:23790/health 2>/dev/null | grep -q '"true"' && return 0
      sleep 0.1
    done
    fail "etcd did not become healthy"
  }
fi
. "$here/../tests/e2e/lib.sh"
trap e2e_teardown EXIT
e2e_setup >/dev/null
d network create -d macvlan --subnet 192.0.2.0/24 -o parent=eth1 builtin >/dev/null
d network create -d static-macvlan --ipam-driver static-macvlan --subnet 198.51.100.0/24 -o parent=eth1 ours >/dev/null
ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
d run --rm --network builtin smv-bb true >/dev/null; d run --rm --network ours smv-bb true >/dev/null  # warm up
for i in $(seq "$runs"); do
  a=$(ms d run --rm --network builtin smv-bb true)
  b=$(ms d run --rm --network ours smv-bb true)
  echo "P1 builtin_ms=$a ours_ms=$b"
done
# P2: the wall time of one burst varies by several per cent from burst to burst, so bursts
# alternate between the networks and the report takes the median of the per-round ratios.
# Fresh names every round: a name that held an address before is a different scenario (its
# reservation makes the engine lookups at RequestAddress more thorough).
for round in $(seq "$rounds"); do
  for net in builtin ours; do
    t0=$(date +%s%N)
    pids=()
    for i in $(seq "$par"); do d run -d --name "$net-$round-$i" --network "$net" smv-bb sleep 60 >/dev/null & pids+=($!); done
    wait "${pids[@]}"
    t1=$(date +%s%N)
    echo "P2 round=$round $net wall_ms=$(( (t1 - t0) / 1000000 ))"
    d rm -f $(for i in $(seq "$par"); do echo "$net-$round-$i"; done) >/dev/null
  done
done
