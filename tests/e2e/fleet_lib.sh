# shellcheck shell=bash
# Sourced by the multi-host e2e tests (fleet_e2e_test.sh, swarm_test.sh) and bench/swarm_create.sh:
# "hosts" that are network namespaces whose eth1 hang on one switch (a fourth namespace with the
# containers' LAN br0, which holds the gateway 192.0.2.254, and the hosts' management network brm,
# 203.0.113.0/24, which holds a 3-member etcd), each host with a private mount namespace, its own
# dockerd 20.10 and the plugin (run beside dockerd, or dockerd's managed plugin), and the teardown
# that ends all of it by PID and removes every namespace, mount and directory, also on failure.
# The caller sets, before it calls anything here:
#   ID    prefix of the namespaces (ID-sw, ID-a, ...)     DIR    its scratch directory (mktemp -d)
#   HOSTS the host names, e.g. (a b c)                    SW     the switch namespace, e.g. $ID-sw
# and may set KEEP_LOGS (a directory the hosts' logs are copied to at teardown). It installs the
# teardown with `trap fleet_teardown EXIT`. A host's files are under $DIR/<host>/.
# The engine is the dockerd on PATH and the client $DOCKER (default bookworm's 20.10); for sid's
# 28.5.2: R=$(scripts/fetch-engine.sh 28); DOCKER=$R/usr/bin/docker PATH=$R/usr/sbin:$R/usr/bin:$PATH

DOCKER=${DOCKER:-/usr/bin/docker}  # Debian's 20.10 client, matching the daemon (or the one of the dockerd on PATH)
P=static-macvlan:latest  # the managed plugin's name on each host
FLEET_STORE=etcd://203.0.113.254:23790,203.0.113.254:23792,203.0.113.254:23794
PASSED=0

ns() { echo "$ID-$1"; }
in_ns() { local n=$1; shift; nsenter --net="/run/netns/$n" "$@"; }
supervisor_pid() { cat "$DIR/$1/supervisor.pid" 2>/dev/null; }
# Runs a command in host $1's private mount + network namespace (its dockerd and plugin).
on() { local h=$1; shift; nsenter --target "$(supervisor_pid "$h")" --mount --net "$@"; }
d() { local h=$1; shift; "$DOCKER" -H "unix://$DIR/$h/docker.sock" "$@"; }

# The tail of each host's plugin log (a plugin run beside dockerd) and dockerd log (which also
# holds a managed plugin's lines).
fleet_logs() {
  local h
  for h in "${HOSTS[@]}"; do
    if [ -f "$DIR/$h/plugin.log" ]; then
      echo "----- host $h: plugin log (tail) -----" >&2; tail -25 "$DIR/$h/plugin.log" >&2 2>/dev/null
    fi
    echo "----- host $h: dockerd log (tail) -----" >&2; tail -30 "$DIR/$h/dockerd.log" >&2 2>/dev/null
  done
  if [ -n "${FLEET_SWARM:-}" ]; then d "${HOSTS[0]}" service ls >&2 2>/dev/null; fi
  return 0
}
fail() { echo "FAIL: $*" >&2; fleet_logs; exit 1; }
# Each line carries the seconds since the start: logs then show where a run spends its time.
pass() { PASSED=$((PASSED + 1)); echo "ok $PASSED - $* [${SECONDS}s]"; }
expect_eq() { [ "$1" = "$2" ] || fail "$3: got \"$1\", want \"$2\""; pass "$3"; }

# fleet_switch CLUSTER_TOKEN: the switch and a healthy 3-member etcd cluster on it (clients
# 203.0.113.254:23790, :23792, :23794 = $FLEET_STORE); etcd's pids in $DIR/etcd-m*.pid.
fleet_switch() {
  local token=$1 cluster="" client peer i
  ip netns add "$SW"
  in_ns "$SW" ip link set lo up
  in_ns "$SW" ip link add br0 type bridge
  in_ns "$SW" ip link add brm type bridge
  in_ns "$SW" ip addr add 192.0.2.254/24 dev br0
  in_ns "$SW" ip addr add 203.0.113.254/24 dev brm
  in_ns "$SW" ip link set br0 up
  in_ns "$SW" ip link set brm up
  for i in 0 1 2; do cluster+="${cluster:+,}m$i=http://203.0.113.254:$((23791 + 2 * i))"; done
  for i in 0 1 2; do
    client=http://203.0.113.254:$((23790 + 2 * i))
    peer=http://203.0.113.254:$((23791 + 2 * i))
    # nsenter execs etcd, so $! is etcd itself (a function in the background would be a subshell).
    nsenter --net="/run/netns/$SW" etcd --name "m$i" --data-dir "$DIR/etcd-m$i" --listen-client-urls "$client" \
      --advertise-client-urls "$client" --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "$token" \
      --heartbeat-interval 100 --election-timeout 1000 >"$DIR/etcd-m$i.log" 2>&1 &
    echo $! >"$DIR/etcd-m$i.pid"
  done
  for _ in $(seq 300); do
    in_ns "$SW" curl -sf http://203.0.113.254:23790/health 2>/dev/null | grep -q '"true"' && break
    sleep 0.1
  done
  in_ns "$SW" curl -sf http://203.0.113.254:23790/health | grep -q '"true"' || fail "etcd is not healthy"
  pass "a 3-member etcd cluster answers on the management network"
}

# fleet_host_wires NAME N: host NAME's namespace with eth1 on br0 (up, no address) and mgmt on
# brm (203.0.113.N/24).
fleet_host_wires() {
  local h=$1 n=$2 host
  host=$(ns "$1")
  ip netns add "$host"
  in_ns "$host" ip link set lo up
  in_ns "$host" ip link add eth1 type veth peer name "sw$h"
  in_ns "$host" ip link add mgmt type veth peer name "mgmt-$h"
  in_ns "$host" ip link set dev "sw$h" netns "/run/netns/$SW"
  in_ns "$host" ip link set dev "mgmt-$h" netns "/run/netns/$SW"
  in_ns "$SW" ip link set "sw$h" master br0 up
  in_ns "$SW" ip link set dev "mgmt-$h" master brm up
  in_ns "$host" ip link set eth1 up
  in_ns "$host" ip addr add "203.0.113.$n/24" dev mgmt
  in_ns "$host" ip link set mgmt up
}

# fleet_host NAME N PRIVATE: the host's wires and its private mount namespace, held by a
# supervisor process, with a fresh tmpfs on PRIVATE (/run/docker/plugins for a plugin run beside
# dockerd, /run/docker for dockerd's managed plugins). The default socket path is used only
# inside that tmpfs, never an installed plugin's: without it the host is refused.
fleet_host() {
  local h=$1 n=$2 private=$3
  mkdir -p "$DIR/$h"
  fleet_host_wires "$h" "$n"
  mkdir -p "$private"
  in_ns "$(ns "$h")" unshare --mount --propagation private sh -c \
    "mount -t tmpfs -o mode=0700 tmpfs $private && echo \$\$ > $DIR/$h/supervisor.pid && exec sleep infinity" &
  for _ in $(seq 100); do [ -s "$DIR/$h/supervisor.pid" ] && break; sleep 0.05; done
  sleep 0.2
  if [ -z "$(supervisor_pid "$h")" ] || ! on "$h" mountpoint -q "$private" ||
    on "$h" test -e /run/docker/plugins/static-macvlan.sock; then
    fail "host $h: cannot isolate: no private tmpfs on $private; refusing to start next to an installed static-macvlan"
  fi
}

# fleet_start_dockerd NAME EXEC_ROOT: the host's dockerd (pid in $DIR/NAME/dockerd.pid). A swarm
# task uses the local image without first trying a registry (there is none here).
fleet_start_dockerd() {
  local h=$1
  on "$h" env DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 sh -c "exec dockerd --iptables=false --ip6tables=false --bridge=none --data-root $DIR/$h/data \
      --exec-root $2 --pidfile $DIR/$h/dockerd.pidfile -H unix://$DIR/$h/docker.sock \
      >>$DIR/$h/dockerd.log 2>&1 & echo \$! > $DIR/$h/dockerd.pid"
}

# fleet_dockerd_ready NAME: waits for the host's dockerd, then imports the busybox image smv-bb
# (there is no registry here).
fleet_dockerd_ready() {
  local h=$1 root=$DIR/$1/image t
  for _ in $(seq 600); do d "$h" version >/dev/null 2>&1 && break; sleep 0.1; done
  d "$h" version >/dev/null 2>&1 || fail "host $h: dockerd did not answer within 60 s"
  mkdir -p "$root/bin"
  cp /bin/busybox "$root/bin/busybox"
  for t in sh ping ip sleep nslookup; do ln -s busybox "$root/bin/$t"; done
  tar -C "$root" -c . | d "$h" import - smv-bb:latest >/dev/null || fail "host $h: docker import"
}

# fleet_managed_plugin NAME PLUGIN_DIR: the host's own managed plugin instance (docker plugin
# create), with its own state directory and node name, on the fleet's book, and the settings in
# FLEET_PLUGIN_SETTINGS (the tests': a pass every second, debug log with each call's took_us).
FLEET_PLUGIN_SETTINGS=${FLEET_PLUGIN_SETTINGS:-SMV_RECONCILE_INTERVAL=1 SMV_LOG_LEVEL=debug}
fleet_managed_plugin() {
  local h=$1 settings
  read -r -a settings <<<"$FLEET_PLUGIN_SETTINGS"
  mkdir -p "$DIR/$h/varlib"
  d "$h" plugin create "$P" "$2" >/dev/null || fail "host $h: docker plugin create"
  d "$h" plugin set "$P" engine.source="$DIR/$h/docker.sock" state-parent.source="$DIR/$h/varlib" \
    SMV_STORE="$FLEET_STORE" SMV_NODE_NAME="host-$h" "${settings[@]}" || fail "host $h: docker plugin set"
  d "$h" plugin enable "$P" >/dev/null || fail "host $h: docker plugin enable"
}

# fleet_swarm_hosts PLUGIN_DIR: every host with dockerd and its managed plugin (hosts numbered
# from 1 on the management network), then a swarm: the first host manages, the others join as
# workers; waits until all nodes are ready.
fleet_swarm_hosts() {
  local n=0 h token
  for h in "${HOSTS[@]}"; do
    n=$((n + 1))
    fleet_host "$h" "$n" /run/docker
    fleet_start_dockerd "$h" /run/docker
  done
  for h in "${HOSTS[@]}"; do
    fleet_dockerd_ready "$h"
    fleet_managed_plugin "$h" "$1"
  done
  pass "${#HOSTS[@]} hosts, each with dockerd $(d "${HOSTS[0]}" version -f '{{.Server.Version}}') and its own managed plugin on the shared book"
  FLEET_SWARM=1
  h=${HOSTS[0]}
  d "$h" swarm init --advertise-addr 203.0.113.1 --listen-addr 203.0.113.1:2377 >/dev/null || fail "swarm init on $h"
  token=$(d "$h" swarm join-token -q worker)
  n=1
  for h in "${HOSTS[@]:1}"; do
    n=$((n + 1))
    d "$h" swarm join --token "$token" --advertise-addr "203.0.113.$n" --listen-addr "203.0.113.$n:2377" \
      203.0.113.1:2377 >/dev/null || fail "swarm join on $h"
  done
  for _ in $(seq 300); do
    [ "$(d "${HOSTS[0]}" node ls --format '{{.Status}}' | grep -c Ready)" = "${#HOSTS[@]}" ] && break
    sleep 0.2
  done
  expect_eq "$(d "${HOSTS[0]}" node ls --format '{{.Status}}' | grep -c Ready)" "${#HOSTS[@]}" \
    "docker swarm init on ${HOSTS[0]}, join on the others: ${#HOSTS[@]} nodes ready"
}

# The hosts' services, containers, swarm, networks and managed plugins, then every process by PID.
fleet_stop_hosts() {
  local h pid
  if [ -n "${FLEET_SWARM:-}" ]; then
    d "${HOSTS[0]}" service ls -q 2>/dev/null | xargs -r "$DOCKER" -H "unix://$DIR/${HOSTS[0]}/docker.sock" service rm >/dev/null 2>&1
  fi
  for h in "${HOSTS[@]}"; do
    d "$h" ps -aq 2>/dev/null | xargs -r "$DOCKER" -H "unix://$DIR/$h/docker.sock" rm -f >/dev/null 2>&1
    [ -n "${FLEET_SWARM:-}" ] && d "$h" swarm leave -f >/dev/null 2>&1
    d "$h" network ls -q --filter type=custom 2>/dev/null | xargs -r "$DOCKER" -H "unix://$DIR/$h/docker.sock" network rm >/dev/null 2>&1
    if [ -d "$DIR/$h/varlib" ]; then
      d "$h" plugin disable -f "$P" >/dev/null 2>&1
      d "$h" plugin rm -f "$P" >/dev/null 2>&1
    fi
    for pid in $(cat "$DIR/$h/dockerd.pid" "$DIR/$h/plugin.pid" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
  done
  for pid in $(cat "$DIR"/etcd-*.pid 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
  for pid in $(cat "$DIR"/*/dockerd.pid "$DIR"/*/plugin.pid "$DIR"/etcd-*.pid 2>/dev/null); do
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  for h in "${HOSTS[@]}"; do
    [ -n "$(supervisor_pid "$h")" ] && kill "$(supervisor_pid "$h")" 2>/dev/null
  done
}

# The EXIT trap: logs on failure, everything started ended, namespaces, mounts and $DIR removed;
# exits with the script's status.
fleet_teardown() {
  local rc=$? h n
  set +e
  [ "$rc" -ne 0 ] && fleet_logs
  if [ -n "${KEEP_LOGS:-}" ]; then
    for h in "${HOSTS[@]}"; do
      cp "$DIR/$h/dockerd.log" "$KEEP_LOGS/dockerd-$h.log" 2>/dev/null
      cp "$DIR/$h/plugin.log" "$KEEP_LOGS/plugin-$h.log" 2>/dev/null
    done
  fi
  fleet_stop_hosts
  # Anything still in a namespace of ours was started here (containerd, shims, a plugin); before
  # the wait, which would otherwise wait for them.
  for n in "$SW" $(for h in "${HOSTS[@]}"; do ns "$h"; done); do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
  done
  wait 2>/dev/null
  for h in "${HOSTS[@]}"; do ip netns del "$(ns "$h")" 2>/dev/null; done
  ip netns del "$SW" 2>/dev/null
  # dockerd's data root holds read-only layers and mounts; unmount whatever is left first.
  grep -o " ${DIR}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$DIR"
  exit "$rc"
}
