#!/bin/bash
# The managed plugin as a Docker user meets it, on a private dockerd: docker plugin create from
# build/plugin and enable with the default mounts on a host that never had static-macvlan (its
# /var/lib holds no static-macvlan/, which the plugin creates for its book); a network on
# static-macvlan:latest; a name keeps its address through rm + run, through a dockerd restart (a
# --restart=always container comes back with it), through plugin disable + enable, and through an
# upgrade (the plugin removed and created again from a new plugin directory); the CLI finds the
# plugin's socket by itself. First, without dockerd: every serve option is a setting of the
# plugin's config.json (with serve's default) or fixed by its entrypoint.
# Usage: tests/package/managed_plugin_test.sh build/static-macvlan build/plugin
set -euo pipefail
SMV=$(readlink -f "${1:?usage: managed_plugin_test.sh STATIC-MACVLAN-BINARY PLUGIN-DIR}")
PLUGIN_DIR=$(readlink -f "${2:?usage: managed_plugin_test.sh STATIC-MACVLAN-BINARY PLUGIN-DIR}")
[ -f "$PLUGIN_DIR/config.json" ] || { echo "managed_plugin_test.sh: no $PLUGIN_DIR/config.json (scripts/package.sh)" >&2; exit 1; }

# Every serve option is a plugin setting (an SMV_* variable `docker plugin set` may change, whose
# value is serve's default) or fixed by the entrypoint (--socket, --state-dir, ... where the
# plugin's mounts are): a serve option added without either fails here. No dockerd needed.
check_settings_cover_serve() {
  local config=$PLUGIN_DIR/config.json help flag env default entry value bad=""
  help=$("$SMV" serve --help)
  while read -r flag env; do
    default=$(grep -oE "=[^ ]* \(Env:$env\)" <<<"$help" | sed -E 's/^=([^ ]*) .*/\1/') || true
    if [ -z "$default" ] && grep -qE -- "$flag \(Env:$env\)" <<<"$help"; then default=false; fi  # a flag
    if jq -e --arg f "$flag" '.entrypoint | index($f)' "$config" >/dev/null; then
      jq -e --arg e "$env" '.env[] | select(.name == $e)' "$config" >/dev/null &&
        bad+=" $env is settable, but the entrypoint fixes $flag;"
      continue
    fi
    entry=$(jq -c --arg e "$env" '.env[] | select(.name == $e and .settable == ["value"])' "$config")
    if [ -z "$entry" ]; then
      bad+=" $env (serve $flag) is neither a settable variable of the plugin nor fixed by its entrypoint;"
      continue
    fi
    value=$(jq -r .value <<<"$entry")
    [ "$value" = "$default" ] || bad+=" $env (serve $flag): config.json has \"$value\", want settable \"$default\";"
  done < <(grep -oE -- '--[a-z-]+[^(]*\(Env:SMV_[A-Z_]+\)' <<<"$help" | sed -E 's/^(--[a-z-]+).*\(Env:(SMV_[A-Z_]+)\)$/\1 \2/')
  for env in $(jq -r '.env[].name' "$config"); do
    grep -q "(Env:$env)" <<<"$help" || bad+=" config.json sets $env, which serve does not read;"
  done
  [ -z "$bad" ] || { echo "FAIL: $config and serve --help disagree:$bad" >&2; exit 1; }
  echo "ok - every serve option is a plugin setting with serve's default, or fixed by the entrypoint"
}
check_settings_cover_serve
E2E_MANAGED_PLUGIN=1
# shellcheck source=../e2e/lib.sh
. "$(dirname "$0")/../e2e/lib.sh"
P=static-macvlan:latest

managed_teardown() {
  local rc=$?
  set +e  # every step below runs, whatever fails
  d ps -aq 2>/dev/null | xargs -r "$DOCKER" -H "unix://$DOCKER_SOCK" rm -f >/dev/null 2>&1
  d network ls -q --filter type=custom 2>/dev/null | xargs -r "$DOCKER" -H "unix://$DOCKER_SOCK" network rm >/dev/null 2>&1
  d plugin disable -f "$P" >/dev/null 2>&1
  d plugin rm -f "$P" >/dev/null 2>&1
  (exit "$rc")
  e2e_teardown
}
trap managed_teardown EXIT
# The host's /var/lib, as dockerd and the plugin see it: a fresh empty directory bound over /var/lib
# in their private mount namespace, before dockerd starts, so that the default state-parent mount
# (the host's /var/lib) is used as a new user's would be, and this host's /var/lib is never seen.
VAR_LIB=$E2E_DIR/varlib
BOOK=$VAR_LIB/static-macvlan  # the plugin's --state-dir, seen from here
e2e_before_plugin() {
  case "$E2E_DIR/" in /var/lib/*) fail "E2E_DIR $E2E_DIR is under /var/lib, which the test hides" ;; esac
  mkdir "$VAR_LIB"
  touch "$VAR_LIB/.smv-e2e-var-lib"
  in_docker_ns mount --bind "$VAR_LIB" /var/lib || fail "bind $VAR_LIB over /var/lib in the private namespace"
  in_docker_ns test -e /var/lib/.smv-e2e-var-lib && [ ! -e /var/lib/.smv-e2e-var-lib ] ||
    fail "cannot isolate: /var/lib of the private namespace is not $VAR_LIB alone"
}
e2e_setup
plugin_log() { grep 'plugin=' "$DOCKERD_LOG" | tail -40 >&2 || true; }  # none yet: no exit under set -e

create_plugin() {  # create_plugin DIR [SETTING...]
  d plugin create "$P" "$1" >/dev/null || fail "docker plugin create $P $1"
  d plugin set "$P" engine.source="$DOCKER_SOCK" SMV_LOG_LEVEL=debug "${@:2}" || fail "docker plugin set ${*:2}"
  d plugin enable "$P" >/dev/null || { plugin_log; fail "docker plugin enable"; }
}
[ ! -e "$BOOK" ] || fail "$BOOK exists before the first enable"
create_plugin "$PLUGIN_DIR"  # state-parent as shipped: the host's /var/lib
[ -d "$BOOK" ] || fail "enable on a /var/lib without static-macvlan/ created no $BOOK"
expect_eq "$(stat -c '%a %U' "$BOOK")" "700 root" "the first enable creates the host's /var/lib/static-macvlan, mode 0700"
expect_eq "$(d plugin ls --format '{{.Name}} {{.Enabled}}')" "$P true" "docker plugin ls shows $P enabled"
expect_eq "$(d plugin inspect -f '{{.Config.Interface.Types}}' "$P")" \
  "[docker.networkdriver/1.0 docker.ipamdriver/1.0]" "the plugin implements the network and IPAM interfaces"

d network create -d "$P" --ipam-driver "$P" --subnet 192.0.2.0/24 --gateway 192.0.2.254 \
  --ip-range 192.0.2.0/26 -o parent=eth1 lan >/dev/null || { plugin_log; fail "network create on $P"; }
pass "network create -d $P --ipam-driver $P"

d run -d --name a-0 --network lan smv-bb:latest sleep 3600 >/dev/null || fail "run a-0"
first=$(ip_of a-0 lan)
[ -n "$first" ] || fail "a-0 has no address"
in_switch ping -c1 -W2 "$first" >/dev/null || fail "the switch cannot reach a-0 at $first"
pass "a-0 runs at $first and answers the switch"
d rm -f a-0 >/dev/null
d run -d --name a-0 --network lan smv-bb:latest sleep 3600 >/dev/null || fail "run a-0 again"
expect_eq "$(ip_of a-0 lan)" "$first" "rm + run: a-0 keeps $first"
# Containers dockerd restarts at its own boot start before its API answers: give them --ip
# (README, known gaps).
d run -d --name r-0 --restart=always --network lan --ip 192.0.2.60 smv-bb:latest sleep 3600 >/dev/null ||
  fail "run r-0"

# The CLI on the host finds /run/docker/plugins/<id>/static-macvlan.sock without --socket.
sock=$(in_docker_ns sh -c 'ls /run/docker/plugins/*/static-macvlan.sock')
[ -n "$sock" ] || fail "no managed plugin socket under /run/docker/plugins/<id>/"
# The address the plugin's book reserves for a name (the CLI finds the plugin's socket itself).
# `ls --json` is the export document: {"version": 1, "reservations": [{"name", "address", ...}]}.
reserved_for() {
  in_docker_ns "$SMV" reservations ls --json |
    jq -r --arg name "$1" '.reservations[] | select(.name == $name) | .address'
}
expect_eq "$(reserved_for a-0)" "$first" "reservations ls (no --socket) reaches the plugin at $sock"
[ -s "$BOOK/data.mdb" ] || fail "no address book $BOOK/data.mdb"
pass "the book is in the host's /var/lib/static-macvlan/data.mdb"

stop_dockerd
start_dockerd
for _ in $(seq 200); do
  [ "$(d inspect -f '{{.State.Running}}' r-0 2>/dev/null)" = true ] && break
  sleep 0.1
done
expect_eq "$(d inspect -f '{{.State.Running}}' r-0)" true "dockerd restart: the plugin and --restart=always r-0 come back"
expect_eq "$(ip_of r-0 lan)" 192.0.2.60 "dockerd restart: r-0 keeps 192.0.2.60"
in_switch ping -c1 -W2 192.0.2.60 >/dev/null || fail "the switch cannot reach r-0 after the dockerd restart"
pass "r-0 answers the switch after the dockerd restart"

# doctor's dockerd line (and its fix line on FAIL); the CLI finds the plugin's socket itself.
doctor_dockerd() { in_docker_ns "$SMV" doctor --docker-host "unix://$DOCKER_SOCK" --state-dir "$BOOK" \
  | grep -e "^ok    dockerd " -e "^FAIL  dockerd " -A"$1"; }
expect_eq "$(doctor_dockerd 0)" "ok    dockerd  dockerd has managed plugin $P enabled among its network drivers" \
  "doctor: dockerd has the managed plugin enabled"
# a-0 is removed first: from then on only the book holds its address, through disable + enable.
d rm -f a-0 >/dev/null
d plugin disable -f "$P" >/dev/null || fail "plugin disable"
expect_eq "$(d plugin ls --format '{{.Enabled}}')" false "docker plugin disable -f"
expect_eq "$(doctor_dockerd 1 | tr -s ' ')" "FAIL dockerd managed plugin $P is installed but disabled: dockerd sends it nothing
 fix: docker plugin enable $P" "doctor with the plugin disabled: FAIL and the enable command"
d plugin enable "$P" >/dev/null || { plugin_log; fail "plugin enable after disable"; }
expect_eq "$(reserved_for a-0)" "$first" "disable + enable: the book still reserves $first for a-0, which does not exist"
d run -d --name a-0 --network lan smv-bb:latest sleep 3600 >/dev/null || fail "run a-0 after enable"
expect_eq "$(ip_of a-0 lan)" "$first" "disable + enable: the reservation is kept, a-0 gets $first"

# Upgrade: a new plugin directory (its rootfs marks it as another build) replaces the old plugin;
# its state-parent is set to the same directory by its path here (the setting names the
# directory that holds static-macvlan/).
cp -a "$PLUGIN_DIR" "$E2E_DIR/plugin-new"
echo "upgrade-test" >> "$E2E_DIR/plugin-new/rootfs/etc/static-macvlan-version"
d rm -f a-0 >/dev/null
old_id=$(d plugin inspect -f '{{.Id}}' "$P")
d plugin disable -f "$P" >/dev/null || fail "plugin disable before the upgrade"
d plugin rm -f "$P" >/dev/null || fail "plugin rm before the upgrade"
create_plugin "$E2E_DIR/plugin-new" state-parent.source="$VAR_LIB"
new_id=$(d plugin inspect -f '{{.Id}}' "$P")
[ "$old_id" != "$new_id" ] || fail "the upgraded plugin has the old id $old_id"
expect_eq "$(reserved_for a-0)" "$first" "upgrade: the book still reserves $first for a-0, which does not exist"
d run -d --name a-0 --network lan smv-bb:latest sleep 3600 >/dev/null || fail "run a-0 after the upgrade"
expect_eq "$(ip_of a-0 lan)" "$first" "upgrade (plugin rm + create from a new directory): a-0 gets $first"
d run -d --name b-0 --network lan smv-bb:latest sleep 3600 >/dev/null || fail "run b-0 after the upgrade"
second=$(ip_of b-0 lan)
[ -n "$second" ] && [ "$second" != "$first" ] || fail "b-0 got \"$second\" next to a-0's $first"
pass "a new name after the upgrade gets a new address ($second)"
# Host access from inside the plugin's container: the host link, its sysctls and host routes.
d network create -d "$P" --ipam-driver "$P" --subnet 198.51.100.0/24 --gateway 198.51.100.254 \
  -o parent=eth1 -o host_ip=198.51.100.253 hostnet >/dev/null || { plugin_log; fail "network create -o host_ip on $P"; }
d run -d --name h-0 --network hostnet smv-bb:latest sleep 600 >/dev/null || fail "run h-0"
h0=$(ip_of h-0 hostnet)
in_host ping -c1 -W2 "$h0" >/dev/null || { plugin_log; fail "the host cannot reach h-0 at $h0 through the managed plugin's host link"; }
d exec h-0 ping -c1 -W2 198.51.100.253 >/dev/null || fail "h-0 cannot reach the host's 198.51.100.253"
pass "-o host_ip under the managed plugin: the host and h-0 ($h0) reach each other"
# Gratuitous ARPs from inside the plugin need CAP_NET_RAW (its config grants it).
sleep 2.5  # the default schedule: 3 announcements 1 s apart
sock=$(in_docker_ns sh -c 'ls /run/docker/plugins/*/static-macvlan.sock')  # the upgraded plugin's
metrics=$(in_docker_ns curl -sf --unix-socket "$sock" http://plugin/metrics) || fail "GET /metrics on $sock"
sent=$(echo "$metrics" | awk '/^static_macvlan_announcements_total\{kind="arp",result="ok"\}/ {print $2}')
failed=$(echo "$metrics" | awk '/^static_macvlan_announcements_total\{kind="arp",result="error"\}/ {print $2}')
[ "${sent:-0}" != 0 ] && [ -z "$failed" ] || fail "gratuitous ARPs from the plugin: ok=${sent:-0} error=${failed:-0}"
pass "the managed plugin sends gratuitous ARPs (ok=$sent, no errors)"

# One writer per host (README, Daemon): a serve on the enabled plugin's state directory, as the
# .deb service would start beside it, is refused naming the managed plugin, and changes nothing.
refused=$(in_docker_ns timeout 20 "$SMV" serve --socket "$E2E_DIR/beside.sock" --state-dir "$BOOK" \
  --docker-host "unix://$DOCKER_SOCK" 2>&1) && fail "a serve on the managed plugin's state directory started"
case "$refused" in
  *"is held by another static-macvlan serve (PID "*"the managed plugin "*"One of them per host: the .deb service or the managed plugin"*) ;;
  *) fail "serve beside the managed plugin, not refused as one of them per host: $refused" ;;
esac
[ ! -e "$E2E_DIR/beside.sock" ] || fail "the refused serve left its socket"
d exec a-0 true && [ "$(ip_of a-0 lan)" = "$first" ] || fail "the plugin's a-0 lost $first beside the refused serve"
pass "a serve on the managed plugin's state directory is refused: one of them per host"
echo "managed_plugin_test.sh: $E2E_PASSED passed"
