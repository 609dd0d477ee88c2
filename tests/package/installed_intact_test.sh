#!/bin/bash
# README's install command and the package tier beside an installed plugin. A machine with an
# earlier install.sh's installation (the binary in /usr/local/bin, a background daemon) and a
# reservation in its book runs scripts/install.sh, here with the tier's .deb (SMV_PREBUILT_DEB)
# instead of a build of its own: the .deb is installed, the earlier binary and daemon are gone,
# the package's daemon answers on the same book, logs to /var/log/static-macvlan.log and has
# rc.d links; install.sh run again (the upgrade) restarts it. Then tests/package/deb_test.sh and
# tests/package/managed_plugin_test.sh run there; afterwards the installed daemon's book (the
# reservation is listed, data.mdb is the same file), its log (there, and only grown), its pid file
# and its process (same PID, same start time, alive, answering on the default socket) are intact,
# and the package is still installed.
# That machine is itself a private copy of this host (private_host.sh): the installed instance
# lives on the default paths of its own namespaces, so this test never touches this host's real
# installation either; everything it started ends with those namespaces.
# Usage: tests/package/installed_intact_test.sh build/static-macvlan \
#          build/package/static-macvlan_VERSION_amd64.deb build/package/plugin
set -euo pipefail
usage="usage: installed_intact_test.sh STATIC-MACVLAN-BINARY PACKAGE.deb PLUGIN-DIR"
SMV=$(readlink -f "${1:?$usage}")
DEB=$(readlink -f "${2:?$usage}")
PLUGIN_DIR=$(readlink -f "${3:?$usage}")
[ "$(id -u)" -eq 0 ] || { echo "installed_intact_test.sh: needs root (namespaces)" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=private_host.sh
. "$HERE/private_host.sh"
# The installed machine's overlays and deb_test.sh's own ones inside it stack two deep, the
# kernel's limit: where these directories already are overlays (a Docker container) it cannot run.
for d in $(private_host_dirs); do
  if [ "$(stat -f -c %T "$d")" = overlayfs ]; then
    echo "installed_intact_test.sh: skipped: $d is on overlayfs here, and overlays stack at most two deep"
    exit 77
  fi
done
WORK=$(mktemp -d /var/tmp/smv-intact.XXXXXX)
PASSED=0
SOCK=/run/docker/plugins/static-macvlan.sock

cleanup() {
  local rc=$?
  set +e
  # The installed daemon first (by its PID, inside), then the namespaces with all they hold.
  end_machine
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { PASSED=$((PASSED + 1)); echo "ok $PASSED - $*"; }
post() { in_private curl -sf --unix-socket "$SOCK" -d "$2" "http://plugin/$1"; }

# A private copy of this machine with a NIC (eth1) for the installed plugin's network.
new_machine() {
  private_host_start "smvint$$" "$WORK/$1"
  in_private ip link set lo up
  in_private ip link add eth1 type veth peer name eth1sw
  in_private ip link set eth1 up
}
end_machine() {
  if [ -n "${pid:-}" ]; then in_private kill "$pid" 2>/dev/null || true; fi
  pid=''
  private_host_stop
}

# The installed daemon in use: a network and a reservation in its book; then what must stay.
use_installed() {
  pid=$(in_private cat /run/static-macvlan.pid)
  local pool net
  pool=$(post IpamDriver.RequestPool \
    '{"AddressSpace":"static-macvlan-local","Pool":"203.0.113.0/24","SubPool":"","Options":{},"V6":false}' | jq -r .PoolID)
  post IpamDriver.RequestAddress \
    "{\"PoolID\":\"$pool\",\"Address\":\"203.0.113.254\",\"Options\":{\"RequestAddressType\":\"com.docker.network.gateway\"}}" >/dev/null
  net=$(printf 'installed%055d' 1)
  post NetworkDriver.CreateNetwork "{\"NetworkID\":\"$net\",\"Options\":{\"com.docker.network.generic\":{\"parent\":\"eth1\"}},
    \"IPv4Data\":[{\"AddressSpace\":\"static-macvlan-local\",\"Gateway\":\"203.0.113.254/24\",\"Pool\":\"203.0.113.0/24\"}],
    \"IPv6Data\":[]}" >/dev/null || fail "CreateNetwork on the installed daemon"
  in_private static-macvlan reservations reserve installed-web 203.0.113.10 --network "$net" >/dev/null ||
    fail "reservations reserve on the installed daemon"
  baseline_installed
}

# What harm() compares against: the running daemon (pid file), its book's inode, its log.
baseline_installed() {
  pid=$(in_private cat /run/static-macvlan.pid)
  started=$(in_private awk '{print $22}' "/proc/$pid/stat")
  book_inode=$(in_private stat -c %i /var/lib/static-macvlan/data.mdb)
  in_private cat /var/log/static-macvlan.log >"$WORK/log.before"
  [ -s "$WORK/log.before" ] || fail "the installed daemon's log /var/log/static-macvlan.log is empty"
}

# Every way the installed instance can be harmed, each named; empty when it is intact.
harm() {
  local state reserved
  [ "$(in_private cat /run/static-macvlan.pid 2>/dev/null)" = "$pid" ] ||
    echo "its pid file /run/static-macvlan.pid is gone or changed (now: $(in_private cat /run/static-macvlan.pid 2>&1))"
  state=$(in_private awk '{print $3, $22}' "/proc/$pid/stat" 2>/dev/null) || true
  case "$state" in
    "" | "Z "*) echo "its process $pid is gone" ;;
    *" $started") ;;
    *) echo "PID $pid is another process now" ;;
  esac
  [ "$(in_private stat -c %i /var/lib/static-macvlan/data.mdb 2>/dev/null)" = "$book_inode" ] ||
    echo "its book /var/lib/static-macvlan/data.mdb is gone or replaced"
  reserved=$(in_private static-macvlan reservations ls --json 2>/dev/null |
    jq -r '.reservations[] | select(.name == "installed-web") | .address' 2>/dev/null) || true
  [ "$reserved" = 203.0.113.10 ] || echo "its book does not list installed-web -> 203.0.113.10 (got \"$reserved\")"
  [ "$(post Plugin.Activate '{}' 2>/dev/null)" = '{"Implements":["NetworkDriver","IpamDriver"]}' ] ||
    echo "it does not answer Plugin.Activate on $SOCK"
  if ! in_private test -f /var/log/static-macvlan.log; then
    echo "its log /var/log/static-macvlan.log is gone"
  else
    in_private cat /var/log/static-macvlan.log >"$WORK/log.after"
    cmp -s -n "$(stat -c %s "$WORK/log.before")" "$WORK/log.before" "$WORK/log.after" &&
      [ "$(stat -c %s "$WORK/log.after")" -ge "$(stat -c %s "$WORK/log.before")" ] ||
      echo "its log /var/log/static-macvlan.log was truncated or rewritten"
  fi
}

# run_tier NAME CMD...: runs a test of the package tier on the machine with the installed plugin;
# it must pass, and the installed instance must be intact afterwards.
run_tier() {
  local name=$1 rc=0 problems
  shift
  in_private "$@" >"$WORK/tier.log" 2>&1 || rc=$?
  grep '^# ' "$WORK/tier.log" || true  # the tier's own notes
  problems=$(harm)
  if [ "$rc" -ne 0 ]; then
    tail -30 "$WORK/tier.log" >&2
    grep '^ok \|^FAIL' "$WORK/tier.log" >&2
  fi
  if [ -n "$problems" ]; then
    echo "$name harmed the installed static-macvlan:" >&2
    while read -r line; do echo "  $line" >&2; done <<<"$problems"
  fi
  [ "$rc" -eq 0 ] && [ -z "$problems" ] || fail "$name (exit $rc) on a machine with static-macvlan installed"
  pass "$name passed ($(grep -c '^ok ' "$WORK/tier.log") checks); the installed daemon (pid $pid), its book, log and pid file are intact"
  cp "$WORK/log.after" "$WORK/log.before"
}

# 1. An earlier install.sh's installation: /usr/local/bin/static-macvlan, a background daemon with
# /run/static-macvlan.pid and its log; a reservation in its book.
new_machine install-sh
in_private install -m 0755 "$SMV" /usr/local/bin/static-macvlan
in_private sh -c 'nohup /usr/local/bin/static-macvlan serve >>/var/log/static-macvlan.log 2>&1 & echo $! >/run/static-macvlan.pid'
for _ in $(seq 100); do in_private test -S "$SOCK" && break; sleep 0.05; done
use_installed
old_pid=$pid
pass "an earlier install.sh's binary install: daemon pid $pid, installed-web -> 203.0.113.10 in its book"

# 2. README's install command (scripts/install.sh, with the tier's .deb instead of a build of its
# own: SMV_PREBUILT_DEB) replaces it with the .deb. This host, like a Docker-built one, has a
# /usr/sbin/policy-rc.d that forbids invoke-rc.d and no runlevel: install.sh starts the service.
in_private env SMV_PREBUILT_DEB="$DEB" "$REPO/scripts/install.sh" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log" >&2; fail "scripts/install.sh"; }
version=$(dpkg-deb -f "$DEB" Version)
status=$(in_private dpkg-query -W -f='${Status} ${Version}' static-macvlan 2>&1) || true
[ "$status" = "install ok installed $version" ] || fail "after install.sh the package is \"$status\""
in_private test -e /usr/local/bin/static-macvlan && fail "install.sh left the earlier /usr/local/bin/static-macvlan"
in_private kill -0 "$old_pid" 2>/dev/null && [ "$(in_private awk '{print $3}' "/proc/$old_pid/stat")" != Z ] &&
  fail "install.sh left the earlier daemon (pid $old_pid) running"
pid=$(in_private cat /run/static-macvlan.pid) || fail "no /run/static-macvlan.pid after install.sh"
[ "$(in_private readlink "/proc/$pid/exe")" = /usr/bin/static-macvlan ] ||
  fail "the daemon (pid $pid) is not the package's /usr/bin/static-macvlan: $(in_private readlink "/proc/$pid/exe")"
reserved=$(in_private static-macvlan reservations ls --json | jq -r '.reservations[] | select(.name == "installed-web") | .address')
[ "$reserved" = 203.0.113.10 ] || fail "after install.sh the book does not list installed-web -> 203.0.113.10 (got \"$reserved\")"
[ "$(in_private grep -c 'ready in' /var/log/static-macvlan.log)" -ge 2 ] ||
  fail "/var/log/static-macvlan.log holds no \"ready in\" line of the package's daemon"
in_private sh -c 'ls /etc/rc2.d/S[0-9][0-9]static-macvlan /etc/rc0.d/K[0-9][0-9]static-macvlan' >/dev/null ||
  fail "install.sh left no rc.d links of the init script (it would not start at boot)"
grep -q 'log: /var/log/static-macvlan.log' "$WORK/install.log" || fail "install.sh does not name the log file"
pass "scripts/install.sh (SMV_PREBUILT_DEB): package $version installed, the earlier binary and daemon replaced," \
  "daemon pid $pid runs /usr/bin/static-macvlan, book kept, log in /var/log/static-macvlan.log, rc.d links"

# 3. Running install.sh again (the upgrade) restarts the daemon on the same book.
in_private env SMV_PREBUILT_DEB="$DEB" "$REPO/scripts/install.sh" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log" >&2; fail "scripts/install.sh (again)"; }
new_pid=$(in_private cat /run/static-macvlan.pid)
[ "$new_pid" != "$pid" ] || fail "install.sh again left the daemon of the replaced binary (pid $pid) running"
[ "$(in_private readlink "/proc/$new_pid/exe")" = /usr/bin/static-macvlan ] || fail "after install.sh again no daemon runs the package's binary"
pass "scripts/install.sh again: the daemon restarted (pid $pid -> $new_pid) on the installed binary"
baseline_installed

# 4. The package tier runs beside it; the package stays installed.
run_tier deb_test.sh "$HERE/deb_test.sh" "$DEB"
run_tier managed_plugin_test.sh env E2E_ENGINE="${E2E_ENGINE:-20.10}" "$HERE/managed_plugin_test.sh" "$SMV" "$PLUGIN_DIR"
status=$(in_private dpkg-query -W -f='${Status} ${Version}' static-macvlan 2>&1) || true
[ "$status" = "install ok installed $version" ] || fail "after the package tier the installed package is \"$status\""
pass "the .deb is still installed ($status)"
end_machine
echo "installed_intact_test.sh: $PASSED passed"
