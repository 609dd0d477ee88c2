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
PASSED=0
ETCD_STORE=etcd://203.0.113.254:23790,203.0.113.254:23792,203.0.113.254:23794

ns() { echo "$ID-$1"; }
in_ns() { local n=$1; shift; nsenter --net="/run/netns/$n" "$@"; }
supervisor_pid() { cat "$DIR/$1/supervisor.pid" 2>/dev/null; }
# Runs a command in host $1's private mount + network namespace (its dockerd and plugin).
on() { local h=$1; shift; nsenter --target "$(supervisor_pid "$h")" --mount --net "$@"; }
d() { local h=$1; shift; /usr/bin/docker -H "unix://$DIR/$h/docker.sock" "$@"; }
ip_of() { d "$1" inspect -f '{{(index .NetworkSettings.Networks "lan").IPAddress}}' "$2"; }

logs() {
  local h
  for h in "${HOSTS[@]}"; do
    echo "----- host $h: plugin log (tail) -----" >&2; tail -25 "$DIR/$h/plugin.log" >&2 2>/dev/null
    echo "----- host $h: dockerd log (tail) -----" >&2; tail -15 "$DIR/$h/dockerd.log" >&2 2>/dev/null
  done
}
fail() { echo "FAIL: $*" >&2; logs; exit 1; }
pass() { PASSED=$((PASSED + 1)); echo "ok $PASSED - $*"; }
expect_eq() { [ "$1" = "$2" ] || fail "$3: got \"$1\", want \"$2\""; pass "$3"; }

teardown() {
  local rc=$? h pid n
  set +e
  [ "$rc" -ne 0 ] && logs
  for h in "${HOSTS[@]}"; do
    d "$h" ps -aq 2>/dev/null | xargs -r /usr/bin/docker -H "unix://$DIR/$h/docker.sock" rm -f >/dev/null 2>&1
    d "$h" network rm lan >/dev/null 2>&1
    for pid in dockerd plugin; do
      pid=$(cat "$DIR/$h/$pid.pid" 2>/dev/null) && kill -TERM "$pid" 2>/dev/null
    done
  done
  for pid in $(cat "$DIR"/etcd-*.pid 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
  for pid in $(cat "$DIR"/*/dockerd.pid "$DIR"/*/plugin.pid "$DIR"/etcd-*.pid 2>/dev/null); do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  for h in "${HOSTS[@]}"; do
    [ -n "$(supervisor_pid "$h")" ] && kill "$(supervisor_pid "$h")" 2>/dev/null
  done
  wait 2>/dev/null
  # Anything still in a namespace of ours was started by this test.
  for n in "$SW" $(for h in "${HOSTS[@]}"; do ns "$h"; done); do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
  done
  for h in "${HOSTS[@]}"; do ip netns del "$(ns "$h")" 2>/dev/null; done
  ip netns del "$SW" 2>/dev/null
  grep -o " $DIR[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$DIR"
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR

command -v dockerd >/dev/null || fail "dockerd is not installed (scripts/install-deps.sh --test)"
command -v etcd >/dev/null || fail "etcd is not installed (scripts/install-deps.sh --test)"

# --- the switch: br0 carries the containers' LAN, brm the hosts' management network ----------
fleet_switch "$SW" "$DIR" smv-fleet-e2e

# --- two hosts: eth1 on br0, mgmt on brm, a private mount namespace, the plugin, dockerd -------
n=0
for h in "${HOSTS[@]}"; do
  n=$((n + 1))
  mkdir -p "$DIR/$h"
  fleet_host_wires "$SW" "$(ns "$h")" "$h" "$n"
  mkdir -p /run/docker/plugins
  in_ns "$(ns "$h")" unshare --mount --propagation private sh -c \
    "mount -t tmpfs -o mode=0700 tmpfs /run/docker/plugins && echo \$\$ > $DIR/$h/supervisor.pid && exec sleep infinity" &
  for _ in $(seq 100); do [ -s "$DIR/$h/supervisor.pid" ] && break; sleep 0.05; done
  sleep 0.2
  # The default socket path is used only inside that private tmpfs, never an installed plugin's.
  if [ -z "$(supervisor_pid "$h")" ] || ! on "$h" mountpoint -q /run/docker/plugins ||
    on "$h" test -e /run/docker/plugins/static-macvlan.sock; then
    fail "host $h: cannot isolate: no private tmpfs on /run/docker/plugins; refusing to start next to an installed static-macvlan"
  fi
  on "$h" sh -c "exec $SMV serve --socket /run/docker/plugins/static-macvlan.sock --state-dir $DIR/$h/state \
      --store $ETCD_STORE --node-name host-$h --docker-host unix://$DIR/$h/docker.sock \
      --reconcile-interval 1 --log-level debug >>$DIR/$h/plugin.log 2>&1 & echo \$! > $DIR/$h/plugin.pid"
  for _ in $(seq 100); do on "$h" test -S /run/docker/plugins/static-macvlan.sock && break; sleep 0.05; done
  on "$h" test -S /run/docker/plugins/static-macvlan.sock || fail "host $h: the plugin did not start"
  on "$h" sh -c "exec dockerd --iptables=false --ip6tables=false --bridge=none --data-root $DIR/$h/data \
      --exec-root $DIR/$h/exec --pidfile $DIR/$h/dockerd.pidfile -H unix://$DIR/$h/docker.sock \
      >>$DIR/$h/dockerd.log 2>&1 & echo \$! > $DIR/$h/dockerd.pid"
done
for h in "${HOSTS[@]}"; do
  for _ in $(seq 600); do d "$h" version >/dev/null 2>&1 && break; sleep 0.1; done
  d "$h" version >/dev/null 2>&1 || fail "host $h: dockerd did not answer within 60 s"
  root=$DIR/$h/image
  mkdir -p "$root/bin"
  cp /bin/busybox "$root/bin/busybox"
  for t in sh ping ip sleep; do ln -s busybox "$root/bin/$t"; done
  tar -C "$root" -c . | d "$h" import - smv-bb:latest >/dev/null || fail "host $h: docker import"
done
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
