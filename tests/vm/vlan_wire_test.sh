#!/bin/bash
# Runs inside the 802.1Q guest (tests/vm/qemu-run): the real daemon creates eth1.228 for a
# network with -o vlan=228, two endpoints' macvlans (moved into two namespaces, as dockerd does)
# ping each other and a host on the far side of the wire, and tcpdump on eth1 sees their
# frames tagged 228. A second network on VLAN 229 gets its own link; network removal deletes
# the links we created and keeps one that existed before.
# Usage: vlan_wire_test.sh PATH/TO/static-macvlan
set -euo pipefail
bin=$1
work=$(mktemp -d)
sock=$work/smv.sock
fail() { echo "FAIL: $*" >&2; echo "--- daemon log" >&2; tail -30 "$work/daemon.log" >&2; exit 1; }
call() {  # call ENDPOINT JSON -> prints the response body, fails on non-200
  local out
  out=$(curl -sS --unix-socket "$sock" -w '\n%{http_code}' -X POST --data-binary "$2" "http://plugin/$1")
  [ "$(tail -1 <<<"$out")" = 200 ] || fail "$1 answered $(tail -1 <<<"$out"): $(head -1 <<<"$out")"
  head -1 <<<"$out"
}
passed=0
check() { if eval "$2"; then passed=$((passed + 1)); echo "ok - $1"; else fail "$1"; fi; }

modprobe ipv6 2>/dev/null || true
echo 1 > /proc/sys/net/core/devconf_inherit_init_net
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
ip link add eth1 type veth peer name sw0
ip netns add switch
ip link set sw0 netns switch
ip -n switch link set sw0 up
ip -n switch link add link sw0 name sw0.228 type vlan id 228
ip -n switch addr add 192.0.2.1/24 dev sw0.228
ip -n switch link set sw0.228 up
ip link add link eth1 name eth1.300 type vlan id 300   # existed before us: must survive

"$bin" serve --socket "$sock" --state-dir "$work/state" --log-level debug 2>"$work/daemon.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done

call Plugin.Activate "" >/dev/null
pool=$(call IpamDriver.RequestPool '{"AddressSpace":"l","Pool":"192.0.2.0/24","SubPool":"","Options":{},"V6":false}' | jq -r .PoolID)
call IpamDriver.RequestAddress "{\"PoolID\":\"$pool\",\"Address\":\"192.0.2.1\",\"Options\":{\"RequestAddressType\":\"com.docker.network.gateway\"}}" >/dev/null
net=1111111111111111111111111111111111111111111111111111111111111111
call NetworkDriver.CreateNetwork "{\"NetworkID\":\"$net\",\"Options\":{\"com.docker.network.generic\":{\"parent\":\"eth1\",\"vlan\":\"228\"}},\"IPv4Data\":[{\"Pool\":\"192.0.2.0/24\",\"Gateway\":\"192.0.2.1/24\"}],\"IPv6Data\":[]}" >/dev/null
check "eth1.228 is VLAN 228 with REORDER_HDR" 'ip -d link show eth1.228 | grep -q "vlan protocol 802.1Q id 228 <REORDER_HDR>"'

for n in a b; do
  ep=$(printf "%064d" 0 | sed "s/^0/$n/")
  addr=$(call IpamDriver.RequestAddress "{\"PoolID\":\"$pool\",\"Address\":\"\",\"Options\":null}" | jq -r .Address)
  call NetworkDriver.CreateEndpoint "{\"NetworkID\":\"$net\",\"EndpointID\":\"$ep\",\"Interface\":{\"Address\":\"$addr\",\"AddressIPv6\":\"\",\"MacAddress\":\"\"}}" >/dev/null
  link=$(call NetworkDriver.Join "{\"NetworkID\":\"$net\",\"EndpointID\":\"$ep\",\"SandboxKey\":\"/x\",\"Options\":{}}" | jq -r .InterfaceName.SrcName)
  check "endpoint $n's macvlan sits on eth1.228" 'ip -o link show "$link" | grep -q "$link@eth1.228"'
  ip netns add "c$n"
  ip link set "$link" netns "c$n"              # what dockerd does with SrcName
  ip -n "c$n" link set "$link" name eth0
  ip -n "c$n" addr add "$addr" dev eth0
  ip -n "c$n" link set eth0 up
  eval "addr_$n=${addr%/*}"
done

tcpdump -i eth1 -e -nn -l -U icmp >"$work/cap.txt" 2>"$work/cap.err" &
tpid=$!
for _ in $(seq 50); do grep -q listening "$work/cap.err" && break; sleep 0.1; done
check "container a pings container b" 'ip netns exec ca ping -c 2 -i 0.2 -W 2 "$addr_b" >/dev/null'
check "container a pings the host across the wire" 'ip netns exec ca ping -c 2 -i 0.2 -W 2 192.0.2.1 >/dev/null'
sleep 0.5; kill -TERM "$tpid"; wait "$tpid" || true  # TERM: background jobs ignore SIGINT
check "frames on eth1 carry tag 228" 'grep -q "vlan 228, p 0, ethertype IPv4 (0x0800), $addr_a > 192.0.2.1: ICMP echo request" "$work/cap.txt"'

net2=2222222222222222222222222222222222222222222222222222222222222222
pool2=$(call IpamDriver.RequestPool '{"AddressSpace":"l","Pool":"198.51.100.0/24","SubPool":"","Options":{},"V6":false}' | jq -r .PoolID)
call NetworkDriver.CreateNetwork "{\"NetworkID\":\"$net2\",\"Options\":{\"com.docker.network.generic\":{\"parent\":\"eth1\",\"vlan\":\"229\"}},\"IPv4Data\":[{\"Pool\":\"198.51.100.0/24\"}],\"IPv6Data\":[]}" >/dev/null
net3=3333333333333333333333333333333333333333333333333333333333333333
# dockerd asks our IPAM for the pool first (a network on Docker's IPAM is refused).
call IpamDriver.RequestPool '{"AddressSpace":"l","Pool":"203.0.113.0/24","SubPool":"","Options":{},"V6":false}' >/dev/null
call NetworkDriver.CreateNetwork "{\"NetworkID\":\"$net3\",\"Options\":{\"com.docker.network.generic\":{\"parent\":\"eth1.300\"}},\"IPv4Data\":[{\"Pool\":\"203.0.113.0/24\"}],\"IPv6Data\":[]}" >/dev/null
check "a second network gets eth1.229" 'ip -d link show eth1.229 | grep -q "id 229"'

for n in a b; do
  ep=$(printf "%064d" 0 | sed "s/^0/$n/")
  ip netns del "c$n"                            # the link returns to the host, as at a stop
  for _ in $(seq 20); do ip link show "smv${ep:0:11}" >/dev/null 2>&1 && break; sleep 0.1; done
  call NetworkDriver.Leave "{\"NetworkID\":\"$net\",\"EndpointID\":\"$ep\"}" >/dev/null
  call NetworkDriver.DeleteEndpoint "{\"NetworkID\":\"$net\",\"EndpointID\":\"$ep\"}" >/dev/null
done
for n in "$net" "$net2" "$net3"; do call NetworkDriver.DeleteNetwork "{\"NetworkID\":\"$n\"}" >/dev/null; done
check "our VLAN links are gone" '! ip link show eth1.228 >/dev/null 2>&1 && ! ip link show eth1.229 >/dev/null 2>&1'
check "the VLAN link that existed before is kept" 'ip link show eth1.300 >/dev/null 2>&1'
check "no container links left" '[ "$(ip -o link show type macvlan | wc -l)" = 0 ]'
echo "$passed passed, 0 failed"
