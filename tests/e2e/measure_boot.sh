#!/bin/bash
# Measures how long dockerd 20.10 takes until its API answers when it starts with a
# static-macvlan network and a --restart=always container in its store: with the plugin
# running, and with the plugin down. Prints one line per case; not part of the test run.
# Usage: SMV=build/static-macvlan tests/e2e/measure_boot.sh
set -euo pipefail
here=$(dirname "$(realpath "$0")")
SMV=$(realpath "${SMV:-$1}")
. "$here/lib.sh"
trap e2e_teardown EXIT
e2e_setup
d network create -d static-macvlan --ipam-driver static-macvlan --subnet 192.0.2.0/24 -o parent=eth1 lan >/dev/null
d run -d --name r1 --restart=always --network lan --ip 192.0.2.10 smv-bb sleep 600 >/dev/null
measure() {  # measure LABEL
  stop_dockerd
  local t0 t1; t0=$(date +%s.%N)
  start_dockerd
  t1=$(date +%s.%N)
  for _ in $(seq 300); do [ "$(d inspect -f '{{.State.Running}}' r1)" = true ] && break; sleep 0.1; done
  printf '%s: API answered after %.1f s; restart container running: %s\n' "$1" "$(echo "$t1 - $t0" | bc)" \
    "$(d inspect -f '{{.State.Running}}' r1)"
}
measure "plugin running"
kill_plugin TERM
measure "plugin down"
start_plugin
