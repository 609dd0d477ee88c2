# Sourced by the multi-host e2e tests (fleet_e2e_test.sh, swarm_test.sh): the switch namespace
# with the containers' LAN (br0) and the hosts' management network (brm), a 3-member etcd on brm,
# and a host's two wires. The caller defines in_ns, pass and fail, and cleans up $DIR and the
# namespaces; etcd's pids are in $DIR/etcd-m*.pid.

# fleet_switch SWITCH_NS DIR CLUSTER_TOKEN: the switch and a healthy 3-member etcd cluster on it
# (clients 203.0.113.254:23790, :23792, :23794).
fleet_switch() {
  local sw=$1 dir=$2 token=$3 cluster="" client peer i
  ip netns add "$sw"
  in_ns "$sw" ip link set lo up
  in_ns "$sw" ip link add br0 type bridge
  in_ns "$sw" ip link add brm type bridge
  in_ns "$sw" ip addr add 192.0.2.254/24 dev br0
  in_ns "$sw" ip addr add 203.0.113.254/24 dev brm
  in_ns "$sw" ip link set br0 up
  in_ns "$sw" ip link set brm up
  for i in 0 1 2; do cluster+="${cluster:+,}m$i=http://203.0.113.254:$((23791 + 2 * i))"; done
  for i in 0 1 2; do
    client=http://203.0.113.254:$((23790 + 2 * i))
    peer=http://203.0.113.254:$((23791 + 2 * i))
    # nsenter execs etcd, so $! is etcd itself (a function in the background would be a subshell).
    nsenter --net="/run/netns/$sw" etcd --name "m$i" --data-dir "$dir/etcd-m$i" --listen-client-urls "$client" \
      --advertise-client-urls "$client" --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "$token" \
      --heartbeat-interval 100 --election-timeout 1000 >"$dir/etcd-m$i.log" 2>&1 &
    echo $! >"$dir/etcd-m$i.pid"
  done
  for _ in $(seq 300); do
    in_ns "$sw" curl -sf http://203.0.113.254:23790/health 2>/dev/null | grep -q '"true"' && break
    sleep 0.1
  done
  in_ns "$sw" curl -sf http://203.0.113.254:23790/health | grep -q '"true"' || fail "etcd is not healthy"
  pass "a 3-member etcd cluster answers on the management network"
}

# fleet_host_wires SWITCH_NS HOST_NS NAME N: the host's namespace with eth1 on br0 (up, no
# address) and mgmt on brm (203.0.113.N/24).
fleet_host_wires() {
  local sw=$1 host=$2 h=$3 n=$4
  ip netns add "$host"
  in_ns "$host" ip link set lo up
  in_ns "$host" ip link add eth1 type veth peer name "sw$h"
  in_ns "$host" ip link add mgmt type veth peer name "mgmt-$h"
  in_ns "$host" ip link set dev "sw$h" netns "/run/netns/$sw"
  in_ns "$host" ip link set dev "mgmt-$h" netns "/run/netns/$sw"
  in_ns "$sw" ip link set "sw$h" master br0 up
  in_ns "$sw" ip link set dev "mgmt-$h" master brm up
  in_ns "$host" ip link set eth1 up
  in_ns "$host" ip addr add "203.0.113.$n/24" dev mgmt
  in_ns "$host" ip link set mgmt up
}
