#!/bin/bash
# Writes a golden state directory with a released static-macvlan binary: two networks (one
# dual-stack with options and routes, one internal), pools with and without --ip-range and
# --ipam-opt, a gateway lease, a joined endpoint with a name and a MAC, a released name (its
# reservation outlives the lease) and a pre-assigned reservation. Run once per release whose
# store format must keep opening; the output is committed and read by golden_store_test.
# Usage: sudo tests/golden/make_golden.sh BINARY OUTDIR      (root: a private netns + veth)
set -euo pipefail
binary=$(realpath "$1"); out=$2
ns=smv-golden-$$; work=$(mktemp -d)
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link add eth1 type veth peer name sw0
ip -n "$ns" link set eth1 up; ip -n "$ns" link set sw0 up
sock=$work/plugin.sock
ip netns exec "$ns" "$binary" serve --socket "$sock" --state-dir "$work/state" --docker-host unix://$work/none.sock \
  2>"$work/log" & pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
call() {  # call ENDPOINT JSON -> prints the answer, fails on non-200
  curl -sS --fail-with-body --unix-socket "$sock" -X POST "http://plugin/$1" -d "$2"; echo
}
n1=1111111111111111111111111111111111111111111111111111111111111111
n2=2222222222222222222222222222222222222222222222222222222222222222
e1=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
call Plugin.Activate ''
p4=$(call IpamDriver.RequestPool '{"AddressSpace":"static-macvlan-local","Pool":"192.0.2.0/24","SubPool":"192.0.2.128/25","Options":{"release_after":"24h"},"V6":false}' | jq -r .PoolID)
call IpamDriver.RequestAddress "{\"PoolID\":\"$p4\",\"Address\":\"192.0.2.254\",\"Options\":{\"RequestAddressType\":\"com.docker.network.gateway\"}}"
p6=$(call IpamDriver.RequestPool '{"AddressSpace":"static-macvlan-local","Pool":"2001:db8:228::/64","SubPool":"","Options":{},"V6":true}' | jq -r .PoolID)
call IpamDriver.RequestAddress "{\"PoolID\":\"$p6\",\"Address\":\"\",\"Options\":{\"RequestAddressType\":\"com.docker.network.gateway\"}}"
call NetworkDriver.CreateNetwork "{\"NetworkID\":\"$n1\",\"Options\":{\"com.docker.network.generic\":{\"parent\":\"eth1\",\"mtu\":\"1400\",\"routes\":\"198.51.100.0/25 via 192.0.2.254\",\"macvlan_mode\":\"bridge\"}},\"IPv4Data\":[{\"AddressSpace\":\"static-macvlan-local\",\"Pool\":\"192.0.2.0/24\",\"Gateway\":\"192.0.2.254/24\"}],\"IPv6Data\":[{\"AddressSpace\":\"static-macvlan-local\",\"Pool\":\"2001:db8:228::/64\",\"Gateway\":\"2001:db8:228::1/64\"}]}"
a4=$(call IpamDriver.RequestAddress "{\"PoolID\":\"$p4\",\"Address\":\"\",\"Options\":{\"com.docker.network.endpoint.macaddress\":\"02:00:00:00:02:28\",\"com.docker.network.endpoint.name\":\"/web-0\"}}" | jq -r .Address)
a6=$(call IpamDriver.RequestAddress "{\"PoolID\":\"$p6\",\"Address\":\"\",\"Options\":{\"com.docker.network.endpoint.name\":\"/web-0\"}}" | jq -r .Address)
call NetworkDriver.CreateEndpoint "{\"NetworkID\":\"$n1\",\"EndpointID\":\"$e1\",\"Interface\":{\"Address\":\"$a4\",\"AddressIPv6\":\"$a6\",\"MacAddress\":\"02:00:00:00:02:28\"}}"
call NetworkDriver.Join "{\"NetworkID\":\"$n1\",\"EndpointID\":\"$e1\",\"SandboxKey\":\"/var/run/docker/netns/0123456789ab\"}"
api=$(call IpamDriver.RequestAddress "{\"PoolID\":\"$p4\",\"Address\":\"\",\"Options\":{\"com.docker.network.endpoint.name\":\"/api-0\"}}" | jq -r .Address)
call IpamDriver.ReleaseAddress "{\"PoolID\":\"$p4\",\"Address\":\"${api%/*}\"}"
call StaticMacvlan.Reserve "{\"Name\":\"db-0\",\"Address\":\"192.0.2.20\",\"Network\":\"$n1\"}"
p3=$(call IpamDriver.RequestPool '{"AddressSpace":"static-macvlan-local","Pool":"203.0.113.0/24","SubPool":"","Options":{},"V6":false}' | jq -r .PoolID)
call NetworkDriver.CreateNetwork "{\"NetworkID\":\"$n2\",\"Options\":{\"com.docker.network.generic\":{\"parent\":\"eth1\",\"promisc\":\"off\"},\"com.docker.network.internal\":true},\"IPv4Data\":[{\"AddressSpace\":\"static-macvlan-local\",\"Pool\":\"203.0.113.0/24\"}],\"IPv6Data\":[]}"
kill -TERM "$pid"; wait "$pid"; pid=
mkdir -p "$out"
cp "$work/state/data.mdb" "$out/data.mdb"
mdb_dump -a -p "$work/state" > "$out/dump.txt"
echo "golden state written to $out (binary $binary)"
