#!/bin/bash
# The mission's own command on a real 802.1Q kernel (inside tests/vm/qemu-run): a private dockerd
# and the plugin, `docker network create ... -o parent=eth1 -o vlan=228`, two containers ping each
# other and a host on the same VLAN behind the wire, tcpdump -e on eth1 shows their frames tagged
# 228, VLAN 229 gets its own sub-interface, and network rm deletes the sub-interfaces we created
# and keeps one that existed before.
# Usage: tests/vm/qemu-run -m 2G -- tests/vm/dockerd_vlan_test.sh build/static-macvlan
set -euo pipefail
here=$(dirname "$(realpath "$0")")
SMV=$(realpath "$1")
E2E_TMP=/run   # a tmpfs in the guest: overlay2 cannot sit on the guest's overlay root
. "$here/../e2e/lib.sh"
trap e2e_teardown EXIT
trap 'exit 130' INT TERM
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
modprobe ipv6 2>/dev/null || true
echo 1 > /proc/sys/net/core/devconf_inherit_init_net
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
e2e_setup
in_switch ip link add link sw0 name sw0.228 type vlan id 228
in_switch ip addr add 203.0.113.254/24 dev sw0.228
in_switch ip link set sw0.228 up
in_host ip link add link eth1 name eth1.300 type vlan id 300   # not ours: must survive

d network create -d static-macvlan --ipam-driver static-macvlan --subnet 203.0.113.0/24 \
  --gateway 203.0.113.254 -o parent=eth1 -o vlan=228 -o host_ip=203.0.113.253 v228 >/dev/null || fail "network create v228"
in_host ip -d link show eth1.228 | grep -q "vlan protocol 802.1Q id 228 <REORDER_HDR" || fail "eth1.228: $(in_host ip -d link show eth1.228)"
pass "docker network create -o vlan=228 made eth1.228 (802.1Q id 228, REORDER_HDR)"
in_host tcpdump -i eth1 -e -nn -l -U icmp or arp >"$E2E_DIR/cap.txt" 2>"$E2E_DIR/cap.err" &
tpid=$!
for _ in $(seq 100); do grep -q listening "$E2E_DIR/cap.err" && break; sleep 0.1; done
d run -d --name v-0 --network v228 smv-bb sleep 600 >/dev/null
d run -d --name v-1 --network v228 smv-bb sleep 600 >/dev/null
v0=$(ip_of v-0 v228); v1=$(ip_of v-1 v228)
d exec v-0 ping -c 2 -W 3 "$v1" >/dev/null || fail "v-0 cannot ping v-1"
pass "two containers on VLAN 228 ping each other"
d exec v-0 ping -c 2 -W 3 203.0.113.254 >/dev/null || fail "v-0 cannot ping the VLAN 228 host behind the wire"
pass "a container pings a host on VLAN 228 across the wire"
sleep 1; kill -TERM "$tpid"; wait "$tpid" || true  # TERM: background jobs ignore SIGINT
grep -q "vlan 228, p 0, ethertype IPv4 (0x0800), $v0 > 203.0.113.254: ICMP echo request" "$E2E_DIR/cap.txt" \
  || fail "no tagged frame on eth1: $(head -5 "$E2E_DIR/cap.txt")"
pass "tcpdump -e on eth1 shows the container's frames tagged 228"
grep -q "vlan 228, p 0, ethertype ARP (0x0806), .*$v0 tell $v0" "$E2E_DIR/cap.txt" \
  || fail "no tagged gratuitous ARP for $v0: $(grep ARP "$E2E_DIR/cap.txt" | head -5)"
pass "the container's gratuitous ARP leaves eth1 tagged 228"
host_both_ways() {
  in_host ping -c 1 -W 3 "$v0" >/dev/null && d exec v-0 ping -c 1 -W 3 203.0.113.253 >/dev/null
}
host_both_ways || fail "host <-> v-0 over the host link on eth1.228"
pass "host_ip on VLAN 228: the host pings a container and the container pings the host"
kill_plugin TERM
in_host ip link del "$(in_host ip -o addr show | awk '/inet 203\.0\.113\.253\/32/ {print $2}' | cut -d@ -f1)"
start_plugin
host_both_ways || fail "host <-> v-0 after the host link was deleted and the plugin restarted"
pass "host_ip on VLAN 228 works again after its link was deleted (reboot)"
d network create -d static-macvlan --ipam-driver static-macvlan --subnet 198.51.100.0/24 \
  -o parent=eth1 -o vlan=229 v229 >/dev/null || fail "network create v229"
in_host ip -d link show eth1.229 | grep -q "id 229" || fail "no eth1.229"
pass "a second network with -o vlan=229 gets eth1.229"
d network create -d static-macvlan --ipam-driver static-macvlan --subnet 192.0.2.0/25 \
  -o parent=eth1.300 v300 >/dev/null || fail "network create on the existing eth1.300"
pass "a network on an existing VLAN link adopts it"
# ipvlan (-o ipvlan_mode=l2): the same VLAN handling and sticky addresses, one MAC on the wire.
in_switch ip link add link sw0 name sw0.230 type vlan id 230
in_switch ip addr add 192.0.2.254/25 dev sw0.230
in_switch ip link set sw0.230 up
d network create -d static-macvlan --ipam-driver static-macvlan --subnet 192.0.2.128/25 --gateway 192.0.2.254 \
  -o parent=eth1 -o vlan=230 -o ipvlan_mode=l2 i230 >/dev/null || fail "network create i230 (ipvlan l2)"
d run -d --name i-0 --network i230 smv-bb sleep 600 >/dev/null
d run -d --name i-1 --network i230 smv-bb sleep 600 >/dev/null
i0=$(ip_of i-0 i230); i1=$(ip_of i-1 i230)
wire_mac=$(in_host ip -o link show eth1 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
i0_pid=$(d inspect -f '{{.State.Pid}}' i-0)
nsenter --net="/proc/$i0_pid/ns/net" ip -d link show eth0 | grep -q "ipvlan *mode l2" \
  || fail "i-0's eth0 is not ipvlan l2: $(nsenter --net="/proc/$i0_pid/ns/net" ip -d link show eth0)"
expect_eq "$(d exec i-0 cat /sys/class/net/eth0/address) $(d exec i-1 cat /sys/class/net/eth0/address)" \
  "$wire_mac $wire_mac" "ipvlan l2: the containers' links are ipvlan with the parent's MAC"
in_host tcpdump -i eth1 -e -nn -l -U icmp >"$E2E_DIR/icap.txt" 2>"$E2E_DIR/icap.err" &
tpid=$!
for _ in $(seq 100); do grep -q listening "$E2E_DIR/icap.err" && break; sleep 0.1; done
d exec i-0 ping -c 2 -W 3 "$i1" >/dev/null || fail "i-0 cannot ping i-1"
d exec i-0 ping -c 2 -W 3 192.0.2.254 >/dev/null || fail "i-0 cannot ping the VLAN 230 host behind the wire"
d exec i-1 ping -c 2 -W 3 192.0.2.254 >/dev/null || fail "i-1 cannot ping the VLAN 230 host behind the wire"
pass "ipvlan l2 on VLAN 230: two containers ping each other and a host behind the wire"
sleep 1; kill -TERM "$tpid"; wait "$tpid" || true
expect_eq "$(grep 'vlan 230, p 0, ethertype IPv4.*> 192.0.2.254: ICMP echo request' "$E2E_DIR/icap.txt" | awk '{print $2}' | sort -u)" \
  "$wire_mac" "tcpdump -e on eth1: both containers' frames tagged 230 carry one MAC, eth1's"
d rm -f i-0 >/dev/null
d run -d --name i-2 --network i230 smv-bb sleep 600 >/dev/null
d run -d --name i-0 --network i230 smv-bb sleep 600 >/dev/null
expect_eq "$(ip_of i-0 i230)" "$i0" "ipvlan: docker rm -f + run --name i-0 keeps its address"
if d run -d --name i-3 --network i230 --mac-address 02:42:00:00:00:03 smv-bb sleep 600 >/dev/null 2>"$E2E_DIR/err"; then
  fail "an ipvlan container took a --mac-address"
fi
grep -q "an ipvlan network (-o ipvlan_mode) gives every container its parent's MAC" "$E2E_DIR/err" \
  || fail "unclear error: $(cat "$E2E_DIR/err")"
pass "ipvlan: --mac-address is refused saying why"
d rm -f i-0 i-1 i-2 i-3 >/dev/null 2>&1 || true
d network rm i230 >/dev/null
in_host ip link show eth1.230 >/dev/null 2>&1 && fail "eth1.230 left behind"
pass "network rm of the ipvlan network deletes eth1.230"

# docs/examples/vlan with compose v1: a second network on VLAN 228 shares eth1.228.
vlan_example() {
  IMAGE=smv-bb:latest PARENT=eth1 DOCKER_HOST="unix://$DOCKER_SOCK" \
    docker-compose -p ex -f "$here/../../docs/examples/vlan/compose.yaml" "$@" >"$E2E_DIR/compose.log" 2>&1 ||
    { cat "$E2E_DIR/compose.log"; fail "docs/examples/vlan: docker-compose $*"; }
}
vlan_example up -d
expect_eq "$(ip_of ex_app_1 ex_vlan228)" 198.51.100.10 "docs/examples/vlan: app on 198.51.100.10 over VLAN 228"
vlan_example up -d --force-recreate
vlan_example down
in_host ip link show eth1.228 >/dev/null 2>&1 || fail "compose down of the example deleted eth1.228, which v228 uses"
vlan_example up -d
expect_eq "$(ip_of ex_app_1 ex_vlan228)" 198.51.100.10 "docs/examples/vlan: same address after --force-recreate and down + up"
vlan_example down

d rm -f v-0 v-1 >/dev/null
d network rm v228 v229 v300 >/dev/null
in_host ip link show eth1.228 >/dev/null 2>&1 && fail "eth1.228 left behind"
in_host ip link show eth1.229 >/dev/null 2>&1 && fail "eth1.229 left behind"
pass "docker network rm deletes the VLAN links it created"
in_host ip link show eth1.300 >/dev/null 2>&1 || fail "eth1.300 was deleted"
pass "docker network rm keeps the VLAN link that existed before"
echo "$E2E_PASSED passed, 0 failed"
