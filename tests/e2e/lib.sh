# Shared harness of the end-to-end tier: a private dockerd 20.10 and the plugin, both inside a
# network namespace that holds a veth named eth1 (the "NIC"), whose peer sits in a second
# namespace acting as the switch (192.0.2.254 and 198.51.100.254 live there). dockerd and the
# plugin also share a private mount namespace whose /run/docker/plugins is a fresh tmpfs, so the
# plugin registers as "static-macvlan" without touching the host's plugin directory.
# Everything is torn down by PID and name on exit, also on failure.

E2E_ID=${E2E_ID:-smv$$}
# dockerd's overlay2 needs a directory that is not itself on overlayfs (the VM guest sets /tmp).
E2E_DIR=$(mktemp -d "${E2E_TMP:-/var/tmp}/smv-e2e.XXXXXX")
HOST_NS=$E2E_ID-host
SWITCH_NS=$E2E_ID-sw
DOCKER_SOCK=$E2E_DIR/docker.sock
PLUGIN_LOG=$E2E_DIR/plugin.log
DOCKERD_LOG=$E2E_DIR/dockerd.log
# The engine: E2E_ENGINE=20.10 (Debian bookworm's dockerd, docker client and compose v1), 28
# (Debian sid's dockerd 28.5.2, containerd 2.1, client and compose v2 2.40) or 26 (Debian trixie's
# dockerd 26.1, containerd 1.7, client and compose v2 2.26); 28 and 26 are unpacked by
# scripts/fetch-engine.sh, and bookworm's runc stays on PATH. E2E_COMPOSE_V2 is set on 26 and 28.
E2E_ENGINE=${E2E_ENGINE:-20.10}
if [ "$E2E_ENGINE" = 28 ] || [ "$E2E_ENGINE" = 26 ]; then
  ENGINE_ROOT=$("$(dirname "${BASH_SOURCE[0]}")/../../scripts/fetch-engine.sh" "$E2E_ENGINE")
  DOCKER=$ENGINE_ROOT/usr/bin/docker
  DOCKERD=$ENGINE_ROOT/usr/sbin/dockerd
  ENGINE_PATH=$ENGINE_ROOT/usr/sbin:$ENGINE_ROOT/usr/bin:$PATH
  COMPOSE=$ENGINE_ROOT/usr/libexec/docker/cli-plugins/docker-compose
  E2E_COMPOSE_V2=1
elif [ "$E2E_ENGINE" = 20.10 ]; then
  DOCKER=/usr/bin/docker   # Debian's 20.10 client, matching the daemon
  DOCKERD=dockerd
  ENGINE_PATH=$PATH
  COMPOSE=docker-compose
  E2E_COMPOSE_V2=
else
  echo "lib.sh: E2E_ENGINE=$E2E_ENGINE: want 20.10, 28 or 26" >&2
  exit 1
fi
# docker compose (v1 or v2) against the private dockerd.
engine_compose() { DOCKER_HOST="unix://$DOCKER_SOCK" "$COMPOSE" "$@"; }
# With E2E_MANAGED_PLUGIN set, dockerd runs the plugin itself (docker plugin create/enable): its
# exec root is then the standard /run/docker, a tmpfs private to this test, where dockerd puts a
# managed plugin's socket at /run/docker/plugins/<id>/static-macvlan.sock.
if [ -n "${E2E_MANAGED_PLUGIN:-}" ]; then
  E2E_PRIVATE_RUN=/run/docker
  E2E_EXEC_ROOT=/run/docker
else
  E2E_PRIVATE_RUN=/run/docker/plugins
  E2E_EXEC_ROOT=$E2E_DIR/exec
fi
SMV=${SMV:?set SMV to the static-macvlan binary}
E2E_PASSED=0

d() { "$DOCKER" -H "unix://$DOCKER_SOCK" "$@"; }
in_host() { nsenter --net="/run/netns/$HOST_NS" "$@"; }
in_switch() { nsenter --net="/run/netns/$SWITCH_NS" "$@"; }
supervisor_pid() { cat "$E2E_DIR/supervisor.pid" 2>/dev/null; }
# Runs a command inside the private mount + network namespace of dockerd and the plugin.
in_docker_ns() { nsenter --target "$(supervisor_pid)" --mount --net "$@"; }

e2e_logs() {
  # A managed plugin logs into dockerd's log and has no log file: no tail, and no exit under set -e.
  echo "----- plugin log (tail) -----" >&2; tail -40 "$PLUGIN_LOG" >&2 2>/dev/null || true
  echo "----- dockerd log (tail) -----" >&2; tail -40 "$DOCKERD_LOG" >&2 2>/dev/null
}
fail() { echo "FAIL: $*" >&2; e2e_logs; exit 1; }
# Each line carries the seconds since the test began: CI logs then show where an e2e run spends its time.
pass() { E2E_PASSED=$((E2E_PASSED + 1)); echo "ok $E2E_PASSED - $* [${SECONDS}s]"; }
expect_eq() { [ "$1" = "$2" ] || fail "$3: got \"$1\", want \"$2\""; pass "$3"; }

# The container's IPv4 address on network $2.
ip_of() { d inspect -f "{{(index .NetworkSettings.Networks \"$2\").IPAddress}}" "$1"; }

start_plugin() {
  in_docker_ns sh -c "exec $SMV serve --socket /run/docker/plugins/static-macvlan.sock \
      --state-dir $E2E_DIR/state --docker-host unix://$DOCKER_SOCK --reconcile-interval 1 --stale-after 5 \
      --log-level debug ${SMV_SERVE_ARGS:-} >>$PLUGIN_LOG 2>&1 & echo \$! > $E2E_DIR/plugin.pid"
  for _ in $(seq 100); do
    in_docker_ns test -S /run/docker/plugins/static-macvlan.sock && return 0
    sleep 0.05
  done
  fail "the plugin did not create its socket"
}
plugin_pid() { cat "$E2E_DIR/plugin.pid"; }
kill_plugin() {  # kill_plugin SIGNAL
  local pid; pid=$(plugin_pid)
  kill "-$1" "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

start_dockerd() {
  # dockerd gives the containerd it starts a fixed time to come up; under software emulation on
  # a loaded host that can run out. Such a start is tried again (the next dockerd adopts the
  # containerd that did come up, and stops it when it stops); any other exit fails at once.
  local attempt
  for attempt in 1 2 3; do
    local from=0; [ -f "$DOCKERD_LOG" ] && from=$(wc -l < "$DOCKERD_LOG")
    in_docker_ns env PATH="$ENGINE_PATH" sh -c "exec $DOCKERD --iptables=false --ip6tables=false --bridge=none \
        --data-root $E2E_DIR/data --exec-root $E2E_EXEC_ROOT --pidfile $E2E_DIR/dockerd.pid \
        -H unix://$DOCKER_SOCK >>$DOCKERD_LOG 2>&1 & echo \$! > $E2E_DIR/dockerd.pid.launch"
    local pid; pid=$(cat "$E2E_DIR/dockerd.pid.launch")
    local i
    for i in $(seq 600); do
      d version >/dev/null 2>&1 && return 0
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && fail "dockerd did not answer within 60 s"
    tail -n "+$((from + 1))" "$DOCKERD_LOG" | grep -q 'timeout waiting for containerd to start' ||
      fail "dockerd exited during start-up"
    echo "# dockerd attempt $attempt: containerd was not up in dockerd's time; starting dockerd again" >&2
  done
  fail "dockerd exited during start-up three times (containerd too slow to start)"
}
# The plugin's view of reservations, through its CLI (inside the private mount namespace).
reservations() { in_docker_ns "$SMV" reservations "$@"; }
# Waits until the plugin's background pass has seen the engine answer (it looks every second).
wait_engine_seen() {
  for _ in $(seq 100); do
    grep -q "identity pass\|engine API not answering" "$PLUGIN_LOG" 2>/dev/null && break
    reservations ls >/dev/null 2>&1 && sleep 1.5 && return 0
    sleep 0.1
  done
}
stop_dockerd() {
  local pid; pid=$(cat "$E2E_DIR/dockerd.pid.launch" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
}

e2e_setup() {
  PATH=$ENGINE_PATH command -v "$DOCKERD" >/dev/null || fail "no $DOCKERD (scripts/install-deps.sh --test)"
  ip netns add "$HOST_NS"
  ip netns add "$SWITCH_NS"
  in_host ip link set lo up
  in_host ip link add eth1 type veth peer name sw0
  in_host ip link set sw0 netns "/run/netns/$SWITCH_NS"
  in_host ip link set eth1 up
  in_switch ip link set lo up
  in_switch ip link set sw0 up
  in_switch ip addr add 192.0.2.254/24 dev sw0
  in_switch ip addr add 198.51.100.254/24 dev sw0
  # The supervisor holds the private mount namespace (tmpfs on /run/docker/plugins) that dockerd
  # and the plugin share; it lives inside the host netns.
  mkdir -p /run/docker/plugins
  in_host unshare --mount --propagation private sh -c \
    "mount -t tmpfs -o mode=0700 tmpfs $E2E_PRIVATE_RUN && echo \$\$ > $E2E_DIR/supervisor.pid && exec sleep infinity" &
  for _ in $(seq 100); do [ -s "$E2E_DIR/supervisor.pid" ] && break; sleep 0.05; done
  sleep 0.2
  # The plugin's default socket path is used only inside that private tmpfs, never an installed
  # plugin's: without the tmpfs the test refuses to start.
  if [ -z "$(supervisor_pid)" ] || ! in_docker_ns mountpoint -q "$E2E_PRIVATE_RUN" ||
    in_docker_ns test -e /run/docker/plugins/static-macvlan.sock; then
    fail "cannot isolate: no private tmpfs on $E2E_PRIVATE_RUN; refusing to start next to an installed static-macvlan"
  fi
  # A caller may start what the plugin needs first (bench/docker_start.sh: an etcd cluster).
  if declare -F e2e_before_plugin >/dev/null; then e2e_before_plugin; fi
  if [ -z "${E2E_MANAGED_PLUGIN:-}" ]; then start_plugin; fi
  start_dockerd
  if [ -z "${E2E_MANAGED_PLUGIN:-}" ]; then wait_engine_seen; fi
  # A busybox image: there is no registry here.
  local root=$E2E_DIR/image
  mkdir -p "$root/bin"
  cp /bin/busybox "$root/bin/busybox"
  for t in sh ping ip sleep cat ifconfig route hostname true; do ln -s busybox "$root/bin/$t"; done
  tar -C "$root" -c . | d import - smv-bb:latest >/dev/null || fail "docker import"
}

e2e_teardown() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ]; then e2e_logs; fi
  if [ -n "${E2E_KEEP_LOGS:-}" ]; then cp "$PLUGIN_LOG" "$DOCKERD_LOG" "$E2E_KEEP_LOGS"/ 2>/dev/null; fi
  d ps -aq 2>/dev/null | xargs -r "$DOCKER" -H "unix://$DOCKER_SOCK" rm -f >/dev/null 2>&1
  d network ls -q --filter type=custom 2>/dev/null | xargs -r "$DOCKER" -H "unix://$DOCKER_SOCK" network rm >/dev/null 2>&1
  stop_dockerd
  [ -f "$E2E_DIR/plugin.pid" ] && kill_plugin TERM
  [ -n "$(supervisor_pid)" ] && kill "$(supervisor_pid)" 2>/dev/null
  # Whatever still runs in our namespaces was started here (etcd members of a benchmark); before
  # the wait, which would otherwise wait for them.
  local n
  for n in "$HOST_NS" "$SWITCH_NS"; do ip netns pids "$n" 2>/dev/null | xargs -r kill -KILL 2>/dev/null; done
  wait 2>/dev/null
  ip netns del "$HOST_NS" 2>/dev/null
  ip netns del "$SWITCH_NS" 2>/dev/null
  # dockerd's data root holds read-only layers and mounts; unmount whatever is left first.
  grep -o " $E2E_DIR[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$E2E_DIR"
  exit "$rc"
}
