#!/bin/bash
# `docker service create` on static-macvlan against Docker's built-in macvlan, both as a swarm
# network from config-only networks (issue 30, Numbers; a benchmark, never a timed test): the
# three-host swarm of tests/e2e/swarm_test.sh (dockerd 20.10 in network namespaces on one switch,
# one managed plugin per host on one etcd book, tests/e2e/fleet_lib.sh). Each run creates a
# service of REPLICAS tasks, --endpoint-mode dnsrr, on one of the two swarm networks and times
# from the create command to the start of its last task's container (State.StartedAt, read once
# `service ls`, polled every 0.1 s, shows all running; the poll's own time is printed too); the
# service is then removed and its containers waited for. Runs alternate (ours first on odd runs, built-in
# first on even ones) so drift on a shared machine falls on both; each run's service has a new
# name (a first create: no slot reservation exists yet). One create on each network (built-in
# first) warms the hosts up before the timed runs (see below). Prints one line per run, then the
# medians and the ratio ours / built-in (issue 30's goal: <= 1.05), the warm-ups against their
# side's median and the ratio over all six creates of each side, then, from the plugins' debug
# log, the count and median/max took_us of each plugin call during the warm-up and the runs on ours.
# Root; dockerd 20.10 and etcd (scripts/install-deps.sh --test); everything is ended and removed
# on exit, also on failure; each wait is bounded (120 s).
# Usage: sudo bench/swarm_create.sh PLUGIN_DIR [RUNS REPLICAS]   (default 5 10; PLUGIN_DIR from
#        scripts/package.sh, e.g. build/plugin)
set -euo pipefail
PLUGIN_DIR=$(realpath "${1:?usage: bench/swarm_create.sh PLUGIN_DIR [RUNS REPLICAS]}")
RUNS=${2:-5}
REPLICAS=${3:-10}
[ -f "$PLUGIN_DIR/config.json" ] || { echo "swarm_create.sh: no $PLUGIN_DIR/config.json (scripts/package.sh)" >&2; exit 1; }
. "$(dirname "$0")/../tests/e2e/fleet_lib.sh"
ID=smvb$$
DIR=$(mktemp -d /var/tmp/smv-swarm-bench.XXXXXX)
SW=$ID-sw
HOSTS=(a b c)
# The plugin as shipped (a pass every 5 s) but with its debug log: each call's took_us.
FLEET_PLUGIN_SETTINGS="SMV_LOG_LEVEL=debug"
trap fleet_teardown EXIT
trap 'exit 130' INT TERM
pass() { :; }  # setup steps print nothing; the figures are the output
[ "$(id -u)" = 0 ] || fail "needs root (network namespaces, dockerd)"
command -v dockerd >/dev/null && command -v etcd >/dev/null || fail "needs dockerd and etcd (scripts/install-deps.sh --test)"

fleet_switch smv-swarm-bench
fleet_swarm_hosts "$PLUGIN_DIR"
# Each host: a config-only network of each driver on eth1 (ours: one range on every host; the
# built-in: each host its own range, as its users do against duplicates), then the swarm networks.
n=0
for h in "${HOSTS[@]}"; do
  d "$h" network create --config-only --ipam-driver "$P" --subnet 192.0.2.0/24 --gateway 192.0.2.254 \
    --ip-range 192.0.2.0/25 -o parent=eth1 cfg-smv >/dev/null || fail "host $h: config-only network of ours"
  d "$h" network create --config-only --subnet 198.51.100.0/24 --gateway 198.51.100.254 \
    --ip-range "198.51.100.$((64 * n))/26" -o parent=eth1 cfg-builtin >/dev/null ||
    fail "host $h: config-only network of the built-in macvlan"
  n=$((n + 1))
done
d a network create -d "$P" --scope swarm --config-from cfg-smv net-ours >/dev/null || fail "swarm network of ours"
d a network create -d macvlan --scope swarm --config-from cfg-builtin net-builtin >/dev/null ||
  fail "swarm network of the built-in macvlan"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# create_ms NETWORK NAME: ms from `service create` to all REPLICAS tasks running.
create_ms() {
  local t0 t1 ms got=""
  t0=$(now_ms)
  d a service create --detach --quiet --no-resolve-image --name "$2" --replicas "$REPLICAS" --endpoint-mode dnsrr \
    --network "$1" --stop-grace-period 1s smv-bb:latest sh -c 'trap "exit 0" TERM; sleep 3600 & wait' >/dev/null ||
    fail "service create $2 on $1"
  for _ in $(seq 1200); do
    got=$(d a service ls --filter "name=$2" --format '{{.Replicas}}')
    if [ "$got" = "$REPLICAS/$REPLICAS" ]; then
      t1=$(now_ms)  # before the start times are read: the poll's own time
      ms=$(last_start_ms "$2" "$t0") || fail "service $2 on $1: its containers' start times"
      echo "$ms $((t1 - t0))"
      return 0
    fi
    sleep 0.1
  done
  fail "service $2 on $1: $got tasks running after 120 s"
}
# last_start_ms SERVICE T0: ms from T0 to the start of the service's last container to start (its
# State.StartedAt; every host is this machine, one clock). The poll only tells when to look: its
# step (0.1 s and a `service ls` on a busy host) was as wide as the goal's 5 %.
# Fails (1, with the reason on stderr) unless exactly REPLICAS containers run, each started after T0.
last_start_ms() {
  local h ids started ns latest=0 running=0
  for h in "${HOSTS[@]}"; do
    ids=$(d "$h" ps -q --filter "label=com.docker.swarm.service.name=$1") || return 1
    [ -n "$ids" ] || continue
    while read -r started; do
      ns=$(date -d "$started" +%s%N) || { echo "start time \"$started\" not read" >&2; return 1; }
      [ $((ns / 1000000)) -gt "$2" ] || { echo "a container started before the create ($started)" >&2; return 1; }
      [ $((ns / 1000000)) -gt "$latest" ] && latest=$((ns / 1000000))
      running=$((running + 1))
    done < <(d "$h" inspect -f '{{.State.StartedAt}}' $ids)
  done
  # One that exited (or was replaced) since the poll would hide its start: not measured then.
  [ "$running" = "$REPLICAS" ] || { echo "$running containers running, not $REPLICAS" >&2; return 1; }
  echo $((latest - $2))
}
# remove NAME: the service removed and its containers gone on every host.
remove() {
  local h left
  d a service rm "$1" >/dev/null || fail "service rm $1"
  for _ in $(seq 1200); do
    left=0
    for h in "${HOSTS[@]}"; do
      left=$((left + $(d "$h" ps -aq --filter "label=com.docker.swarm.service.name=$1" | grep -c . || true)))
    done
    [ "$left" = 0 ] && return 0
    sleep 0.1
  done
  fail "service $1: $left containers left 120 s after service rm"
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
one_run() {  # one_run KIND RUN: appends the time to $KIND_ms (and the poll's to $KIND_polled)
  local kind=$1 ms polled
  read -r ms polled <<<"$(create_ms "net-$kind" "$kind$2")"
  remove "$kind$2"
  echo "SWARM create run=$2 $kind ms=$ms polled_ms=$polled"
  eval "${kind}_ms+=\" $ms\"; ${kind}_polled+=\" $polled\""
}

# One create on each network before the timed runs: without it the bench's first create was always
# ours (run 1 puts ours first), and it ran a median 15 % slower than ours' runs 2-5 over 20 benches,
# while the built-in's run 1 (the bench's second create) ran +2 % over its others. Whether that is
# the host's first create or the plugin's is not assumed: the built-in goes first here, and each
# side's warm-up is printed against its median, with the ratio over all six creates of each side.
# The plugin's calls below include its warm-up.
log_from=()
for h in "${HOSTS[@]}"; do log_from+=("$(wc -l <"$DIR/$h/dockerd.log")"); done
read -r warm_builtin _ <<<"$(create_ms net-builtin warmbuiltin)"
remove warmbuiltin
read -r warm_ours _ <<<"$(create_ms net-ours warmours)"
remove warmours

ours_ms=""
builtin_ms=""
ours_polled=""
builtin_polled=""
for i in $(seq "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then one_run ours "$i"; one_run builtin "$i"; else one_run builtin "$i"; one_run ours "$i"; fi
done
ours=$(median <<<"$ours_ms")
builtin=$(median <<<"$builtin_ms")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
echo "SWARM create replicas=$REPLICAS runs=$RUNS ours_median_ms=$ours builtin_median_ms=$builtin" \
  "ratio=$(ratio "$ours" "$builtin") ours_ms=$(tr ' ' ',' <<<"${ours_ms# }")" \
  "builtin_ms=$(tr ' ' ',' <<<"${builtin_ms# }")"
echo "SWARM polled (service ls every 0.1 s, as before): ours_median_ms=$(median <<<"$ours_polled")" \
  "builtin_median_ms=$(median <<<"$builtin_polled")" \
  "ratio=$(ratio "$(median <<<"$ours_polled")" "$(median <<<"$builtin_polled")")"
echo "SWARM warmup builtin ms=$warm_builtin ($(ratio "$warm_builtin" "$builtin") of its median)" \
  "ours ms=$warm_ours ($(ratio "$warm_ours" "$ours") of its median);" \
  "with the warm-ups: ratio=$(ratio "$(median <<<"$ours_ms $warm_ours")" "$(median <<<"$builtin_ms $warm_builtin")")"
# The plugin's calls during the runs (creates and removals of ours), over the three hosts, and its
# calls to the engine and to etcd within them (by path, an ID shown as ID).
n=0
for h in "${HOSTS[@]}"; do
  tail -n "+$((log_from[n] + 1))" "$DIR/$h/dockerd.log"
  n=$((n + 1))
done | sed -En 's|.*debug (/[A-Za-z]+\.[A-Za-z]+) ok took_us=([0-9]+).*|\1 \2|p
    s|.*debug engine GET ([^ ?]+)[^ ]* status=[0-9]+ took_us=([0-9]+).*|engine:\1 \2|p
    s|.*debug etcd [^ ]+ POST ([^ ]+) status=[0-9]+ took_us=([0-9]+).*|etcd:\1 \2|p' |
  sed -E 's|/[0-9a-z]{25,}|/ID|; s|/[0-9a-f]{12}([/ ])|/ID\1|' | sort -k1,1 -k2,2n |
  awk '{v[$1] = v[$1] " " $2; c[$1]++; m[$1] = $2}
       END {for (k in c) {split(substr(v[k], 2), a, " "); printf "SWARM plugin %s calls=%d median_us=%d max_us=%d\n", k, c[k], a[int((c[k] + 1) / 2)], m[k]}}' | sort
