#!/bin/bash
# End-to-end on two hosts sharing one address book in etcd: two private dockerd 20.10, each with
# the plugin (`serve --store etcd://...`), in two "host" network namespaces whose eth1 hang on one
# switch (a bridge in a third namespace, which also holds the gateway 192.0.2.254 and a 3-member
# etcd cluster on a management network, 203.0.113.0/24). Proves what a fleet user relies on:
# one subnet is one pool (each host with its own --ip-range), a name keeps its address when it
# moves to the other host and is reachable there across the switch, a name running on one host
# is refused on the other naming it, and parallel runs on both hosts never share an address.
# Needs root, dockerd and etcd (scripts/install-deps.sh --test). Everything it starts is ended by
# PID and every namespace, mount and directory removed on exit, also on failure.
# Usage: tests/e2e/fleet_e2e_test.sh build/static-macvlan   (or SMV=... in the environment)
set -euo pipefail
. "$(dirname "$0")/fleet_lib.sh"
SMV=$(realpath "${SMV:-$1}")
ID=${E2E_ID:-smvf$$}
DIR=$(mktemp -d "${E2E_TMP:-/var/tmp}/smv-fleet.XXXXXX")
SW=$ID-sw
HOSTS=(a b)
ip_of() { d "$1" inspect -f '{{(index .NetworkSettings.Networks "lan").IPAddress}}' "$2"; }
trap fleet_teardown EXIT
trap 'exit 130' INT TERM
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR

command -v dockerd >/dev/null || fail "dockerd is not installed (scripts/install-deps.sh --test)"
command -v etcd >/dev/null || fail "etcd is not installed (scripts/install-deps.sh --test)"

fleet_switch smv-fleet-e2e
# Two hosts: the plugin (`serve`) beside dockerd in each host's private mount namespace.
n=0
for h in "${HOSTS[@]}"; do
  n=$((n + 1))
  fleet_host "$h" "$n" /run/docker/plugins
  on "$h" sh -c "exec $SMV serve --socket /run/docker/plugins/static-macvlan.sock --state-dir $DIR/$h/state \
      --store $FLEET_STORE --node-name host-$h --docker-host unix://$DIR/$h/docker.sock \
      --reconcile-interval 1 --log-level debug >>$DIR/$h/plugin.log 2>&1 & echo \$! > $DIR/$h/plugin.pid"
  for _ in $(seq 100); do on "$h" test -S /run/docker/plugins/static-macvlan.sock && break; sleep 0.05; done
  on "$h" test -S /run/docker/plugins/static-macvlan.sock || fail "host $h: the plugin did not start"
  fleet_start_dockerd "$h" "$DIR/$h/exec"
done
for h in "${HOSTS[@]}"; do fleet_dockerd_ready "$h"; done
pass "two hosts, each with dockerd and the plugin on the shared book"

# --- one subnet, one pool: each host gives its own --ip-range --------------------------------
d a network create -d static-macvlan --ipam-driver static-macvlan --subnet 192.0.2.0/24 \
  --gateway 192.0.2.254 --ip-range 192.0.2.0/26 --aux-address router2=192.0.2.250 \
  -o parent=eth1 lan >/dev/null || fail "network create on a"
if d b network create -d static-macvlan --ipam-driver static-macvlan --subnet 192.0.2.0/24 \
  --gateway 192.0.2.254 -o parent=eth1 lan >/dev/null 2>"$DIR/err"; then
  fail "a network without the fleet's --aux-address was accepted"
fi
grep -q "aux-address router2=192.0.2.250 (first set on node host-a)" "$DIR/err" || fail "refusal: $(cat "$DIR/err")"
pass "a network on another host without the subnet's --aux-address is refused naming the first host"
d b network create -d static-macvlan --ipam-driver static-macvlan --subnet 192.0.2.0/24 \
  --gateway 192.0.2.254 --ip-range 192.0.2.64/26 --aux-address router2=192.0.2.250 \
  -o parent=eth1 lan >/dev/null || fail "network create on b"
if d b network create -d static-macvlan --ipam-driver static-macvlan --subnet 192.0.2.0/24 \
  --gateway 192.0.2.1 -o parent=eth1 lan2 >/dev/null 2>"$DIR/err"; then
  fail "a second gateway for the fleet's subnet was accepted"
fi
grep -q "gateway 192.0.2.254 (first set on node host-a)" "$DIR/err" || fail "refusal: $(cat "$DIR/err")"
pass "a different --gateway for the same subnet on another host is refused naming the first"

# --- a name moves between hosts with its address, reachable across the switch ------------------
d a run -d --name web --network lan smv-bb sleep 600 >/dev/null || fail "run web on a"
web=$(ip_of a web)
web_mac=$(d a inspect -f '{{(index .NetworkSettings.Networks "lan").MacAddress}}' web)
case "$web" in 192.0.2.*) ;; *) fail "web got \"$web\"" ;; esac
if d b run -d --name web --network lan smv-bb sleep 600 >/dev/null 2>"$DIR/err"; then
  fail "web started on b while it runs on a"
fi
grep -q 'container name "web" is running on node host-a' "$DIR/err" || fail "refusal: $(cat "$DIR/err")"
pass "web started on b while it runs on a is refused naming host-a"
d b rm -f web >/dev/null 2>&1 || true
d a rm -f web >/dev/null
d b run -d --name web --network lan smv-bb sleep 600 >/dev/null || fail "run web on b after rm on a"
expect_eq "$(ip_of b web)" "$web" "web removed on a and run on b keeps its address"
expect_eq "$(d b inspect -f '{{(index .NetworkSettings.Networks "lan").MacAddress}}' web)" "$web_mac" \
  "... and its MAC ($web_mac): the switch port changes, the MAC does not"
d a run -d --name probe --network lan smv-bb sleep 600 >/dev/null
d a exec probe ping -c 1 -W 3 "$web" >/dev/null || fail "a's container cannot ping web on b"
pass "a container on host a reaches web on host b across the switch"
reservations_b=$(on b "$SMV" reservations ls)
grep -E "^web +$web .*in use on host-b" <<<"$reservations_b" >/dev/null || fail "reservations ls on b: $reservations_b"
pass "reservations ls shows web in use on host-b"

# --- 2 x 20 parallel runs: 40 distinct addresses ----------------------------------------------
pids=()
for h in "${HOSTS[@]}"; do
  for i in $(seq 20); do
    d "$h" run -d --name "p$h$i" --network lan smv-bb sleep 600 >/dev/null 2>"$DIR/p$h$i.err" &
    pids+=($!)
  done
done
for pid in "${pids[@]}"; do wait "$pid" || fail "a parallel run failed: $(cat "$DIR"/p*.err)"; done
all=$(for h in "${HOSTS[@]}"; do for i in $(seq 20); do ip_of "$h" "p$h$i"; done; done)
expect_eq "$(sort -u <<<"$all" | grep -c .)" "40" "2 x 20 parallel runs on two hosts get 40 distinct addresses"
grep -qx -e "$web" -e "192.0.2.254" <<<"$all" && fail "a parallel run got web's address or the gateway"
pass "no parallel run took web's address or the gateway"
echo "# fleet e2e: $PASSED checks passed"
