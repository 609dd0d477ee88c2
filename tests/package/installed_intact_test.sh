#!/bin/bash
# The package tier leaves an installed plugin alone. A machine with static-macvlan installed the
# way README's install command does it (scripts/install.sh, here with the tier's already built
# binary: SMV_PREBUILT_BINARY) and a reservation in its book runs tests/package/deb_test.sh and
# tests/package/managed_plugin_test.sh; afterwards the installed daemon's book (the reservation
# is listed, data.mdb is the same file), its log (there, and only grown), its pid file and its
# process (same PID, same start time, alive, answering on the default socket) are intact. Then
# the same with the .deb installed (apt-get install): deb_test.sh runs beside it, and the package
# stays installed.
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
    jq -r '.[] | select(.Name == "installed-web") | .Address' 2>/dev/null) || true
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

# 1. Installed as README's install command does it; the package tier runs beside it.
new_machine install-sh
in_private env SMV_PREBUILT_BINARY="$SMV" "$REPO/scripts/install.sh" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log" >&2; fail "scripts/install.sh"; }
use_installed
pass "scripts/install.sh (SMV_PREBUILT_BINARY): daemon pid $pid on $SOCK, installed-web -> 203.0.113.10 in its book"
run_tier deb_test.sh "$HERE/deb_test.sh" "$DEB"
run_tier managed_plugin_test.sh env E2E_ENGINE="${E2E_ENGINE:-20.10}" "$HERE/managed_plugin_test.sh" "$SMV" "$PLUGIN_DIR"
end_machine

# 2. Installed as the .deb: deb_test.sh runs there too (it purges the package inside its own
# private copy only), and the host's package stays installed.
new_machine deb
if in_private test -e /usr/sbin/policy-rc.d; then in_private sh -c 'printf "#!/bin/sh\nexit 0\n" > /usr/sbin/policy-rc.d'; fi
in_private env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$DEB" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log" >&2; fail "apt-get install $DEB"; }
use_installed
pass "apt-get install $(basename "$DEB"): daemon pid $pid on $SOCK, installed-web -> 203.0.113.10 in its book"
run_tier deb_test.sh "$HERE/deb_test.sh" "$DEB"
status=$(in_private dpkg-query -W -f='${Status} ${Version}' static-macvlan 2>&1) || true
[ "$status" = "install ok installed $(dpkg-deb -f "$DEB" Version)" ] || fail "after deb_test.sh the installed package is \"$status\""
pass "the .deb is still installed ($status)"
end_machine
echo "installed_intact_test.sh: $PASSED passed"
