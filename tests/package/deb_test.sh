#!/bin/bash
# The .deb as a Debian user meets it: apt-get install, the daemon answers, an upgrade to a newer
# package keeps every reservation, remove keeps the state directory, purge leaves no file of the
# package, no state and no process. The whole test runs inside a private copy of this machine
# (private_host.sh): its own network, mount and PID namespaces, /usr /etc /var/lib /var/log
# /var/cache as overlays that vanish afterwards (the package's files, dpkg's database, the state
# directory, the log) and a fresh /run (pid file, plugin socket). A static-macvlan installed on
# this host, by the .deb or by scripts/install.sh, is never seen nor touched: its book, log, pid
# file, socket and process stay as they are (tests/package/installed_intact_test.sh proves it).
# An installed .deb is therefore no reason to refuse: inside the namespace it is purged first, so
# the test starts from a machine without the package. The test refuses when it cannot isolate
# itself. This host has no systemd, so the package's init script runs the service (through
# invoke-rc.d): its rc.d links, its log /var/log/static-macvlan.log, and with insserv installed in
# the private copy (from scripts/install-deps.sh --test's cache) its boot order before docker. A Docker-built machine's /usr/sbin/policy-rc.d denies every invoke-rc.d action;
# inside the private copy an allowing one replaces it, as on an ordinary Debian host.
# Usage: tests/package/deb_test.sh build/static-macvlan_VERSION_amd64.deb
set -euo pipefail
DEB=$(readlink -f "${1:?usage: deb_test.sh PACKAGE.deb}")
[ "$(id -u)" -eq 0 ] || { echo "deb_test.sh: needs root (apt-get, namespaces)" >&2; exit 1; }
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "${SMV_DEB_TEST_WORK:-}" ]; then
  # shellcheck source=private_host.sh
  . "$HERE/private_host.sh"
  WORK=$(mktemp -d /var/tmp/smv-deb.XXXXXX)
  trap 'rc=$?; private_host_stop; rm -rf "$WORK"; exit "$rc"' EXIT
  private_host_start "smvdeb$$" "$WORK"
  mkdir "$WORK/inner"
  # The test itself, run again inside the private copy.
  in_private env SMV_DEB_TEST_WORK="$WORK/inner" "$HERE/deb_test.sh" "$DEB"
  exit 0
fi

WORK=$SMV_DEB_TEST_WORK
PASSED=0
export DEBIAN_FRONTEND=noninteractive
# Everything here is inside the private copy; its processes end with its PID namespace.
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then tail -20 /var/log/static-macvlan.log 2>/dev/null >&2; fi
  exit "$rc"
}
trap on_exit EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { PASSED=$((PASSED + 1)); echo "ok $PASSED - $*"; }

# This host's own installation, seen through the overlays, goes first: a machine without the
# package. The host keeps its package, book and log (the deletions land in the overlays).
if dpkg-query -W -f='${Status}' static-macvlan 2>/dev/null | grep -q 'installed\|config-files'; then
  echo "# static-macvlan is installed on this host: purged inside the private copy only"
  dpkg --purge static-macvlan >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; fail "dpkg --purge inside the private copy"; }
fi
rm -rf /var/lib/static-macvlan /var/log/static-macvlan.log
if [ -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 0\n' > /usr/sbin/policy-rc.d; fi
ip link set lo up
ip link add eth1 type veth peer name eth1sw
ip link set eth1 up

SOCK=/run/docker/plugins/static-macvlan.sock
post() { curl -sf --unix-socket "$SOCK" -d "$2" "http://plugin/$1"; }
# A stopped daemon may stay a zombie: it was reparented to the namespace's init, which does not
# reap. Running means any state but Z.
alive() { local state; state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [ -n "$state" ] && [ "$state" != Z ]; }
daemon_running() { [ -f /run/static-macvlan.pid ] && alive "$(cat /run/static-macvlan.pid)"; }
# The init script's rc.d links: started in runlevels 2-5, stopped in 0, 1 and 6.
rc_links() { ls /etc/rc?.d/[SK][0-9][0-9]static-macvlan 2>/dev/null; }
rc_links_exist() {
  local level
  for level in 2 3 4 5; do ls /etc/rc$level.d/S[0-9][0-9]static-macvlan >/dev/null 2>&1 || return 1; done
  for level in 0 1 6; do ls /etc/rc$level.d/K[0-9][0-9]static-macvlan >/dev/null 2>&1 || return 1; done
}
# The start number of a script's link in runlevel 2 (boot order: lower starts first).
start_number() { local link; link=$(ls /etc/rc2.d/S[0-9][0-9]"$1" 2>/dev/null) || return 1; basename "$link" | cut -c2-3; }
# The package (re)starts the service itself; this waits for its socket.
service_answers() {
  daemon_running || fail "the package did not start the service"
  for _ in $(seq 100); do test -S "$SOCK" && return 0; sleep 0.05; done
  fail "the daemon did not create $SOCK"
}

# 0. lintian: no errors (warnings are printed).
lintian --tag-display-limit 0 --fail-on error "$DEB" > "$WORK/lintian.txt" 2>&1 || { cat "$WORK/lintian.txt" >&2; fail "lintian reports errors"; }
grep '^[EW]: ' "$WORK/lintian.txt" || true
pass "lintian: $(grep -c '^E: ' "$WORK/lintian.txt") errors, $(grep -c '^W: ' "$WORK/lintian.txt") warnings"

# 1. Install.
apt-get install -y -qq "$DEB" >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; fail "apt-get install"; }
version=$(dpkg-query -W -f='${Version}' static-macvlan)
[ "$(static-macvlan --version)" = "static-macvlan $version" ] || fail "--version is not the package version $version"
pass "apt-get install ./$(basename "$DEB"): version $version, static-macvlan --version agrees"
for f in /usr/bin/static-macvlan /lib/systemd/system/static-macvlan.service /etc/init.d/static-macvlan \
  /etc/default/static-macvlan /usr/share/man/man8/static-macvlan.8.gz \
  /usr/share/bash-completion/completions/static-macvlan /var/lib/static-macvlan; do
  [ -e "$f" ] || fail "$f is missing after install"
done
grep -q '^Before=docker.service' /lib/systemd/system/static-macvlan.service || fail "the unit is not ordered before docker"
bash -n /usr/share/bash-completion/completions/static-macvlan || fail "the bash completion does not parse"
pass "binary, systemd unit (Before=docker.service), init script, defaults, man page, completion, state directory"
# Without insserv (this host: no sysvinit) update-rc.d links the init script as S01 in the
# runlevels that start it and K01 in those that stop it.
rc_links_exist || fail "no rc.d links after install: $(ls /etc/rc?.d/*static-macvlan 2>&1 | paste -sd ' ')"
pass "update-rc.d linked the init script: $(rc_links | paste -sd ' ')"

# 2. The daemon answers, with a setting from /etc/default.
service_answers
echo "SMV_LOG_LEVEL=debug" >> /etc/default/static-macvlan
invoke-rc.d static-macvlan restart >/dev/null
service_answers
answer=$(post Plugin.Activate '{}') || fail "Plugin.Activate got no answer"
[ "$answer" = '{"Implements":["NetworkDriver","IpamDriver"]}' ] || fail "Plugin.Activate answered $answer"
grep -q '\[debug\]\|debug' /var/log/static-macvlan.log || fail "SMV_LOG_LEVEL=debug from /etc/default was not applied"
[ "$(grep -c 'ready in' /var/log/static-macvlan.log)" -ge 2 ] ||
  fail "/var/log/static-macvlan.log does not hold the two starts' \"ready in\" lines: $(tail -5 /var/log/static-macvlan.log)"
pass "the package started the service; it answers Plugin.Activate on $SOCK, reads /etc/default/static-macvlan, logs to /var/log/static-macvlan.log"

# A network and a reservation, as dockerd and a user would make them.
pool=$(post IpamDriver.RequestPool \
  '{"AddressSpace":"static-macvlan-local","Pool":"192.0.2.0/24","SubPool":"","Options":{},"V6":false}' | jq -r .PoolID)
post IpamDriver.RequestAddress \
  "{\"PoolID\":\"$pool\",\"Address\":\"192.0.2.254\",\"Options\":{\"RequestAddressType\":\"com.docker.network.gateway\"}}" >/dev/null
net=$(printf 'deb%061d' 1)
post NetworkDriver.CreateNetwork "{\"NetworkID\":\"$net\",\"Options\":{\"com.docker.network.generic\":{\"parent\":\"eth1\"}},
  \"IPv4Data\":[{\"AddressSpace\":\"static-macvlan-local\",\"Gateway\":\"192.0.2.254/24\",\"Pool\":\"192.0.2.0/24\"}],
  \"IPv6Data\":[]}" >/dev/null || fail "CreateNetwork"
static-macvlan reservations reserve web 192.0.2.10 --network "$net" >/dev/null || fail "reservations reserve"
reserved() { static-macvlan reservations ls --json | jq -r '.reservations[] | select(.name == "web") | .address'; }
[ "$(reserved)" = 192.0.2.10 ] || fail "the reservation is not listed"
pass "a network and the reservation web -> 192.0.2.10 (through the CLI)"

# 3. Upgrade to a newer package: the old daemon is stopped, the book is kept.
mkdir "$WORK/new"
dpkg-deb -R "$DEB" "$WORK/new/tree"
sed -i "s/^Version: .*/Version: $version+upgrade1/" "$WORK/new/tree/DEBIAN/control"
dpkg-deb --root-owner-group --build "$WORK/new/tree" "$WORK/new/static-macvlan_${version}+upgrade1_amd64.deb" >/dev/null
old_pid=$(cat /run/static-macvlan.pid)
apt-get install -y -qq "$WORK/new/static-macvlan_${version}+upgrade1_amd64.deb" >"$WORK/apt.log" 2>&1 ||
  { cat "$WORK/apt.log" >&2; fail "apt-get install (upgrade)"; }
alive "$old_pid" && fail "the upgrade left the old daemon (pid $old_pid) running"
[ "$(dpkg-query -W -f='${Version}' static-macvlan)" = "$version+upgrade1" ] || fail "the upgrade did not install"
service_answers
[ "$(reserved)" = 192.0.2.10 ] || fail "the upgrade lost the reservation"
grep -q '^SMV_LOG_LEVEL=debug' /etc/default/static-macvlan || fail "the upgrade replaced the edited defaults file"
pass "upgrade $version -> $version+upgrade1 stopped the old daemon, kept the reservation and the edited defaults"

# 4. remove: no binary, no process; the book stays.
pid=$(cat /run/static-macvlan.pid)
apt-get remove -y -qq static-macvlan >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; fail "apt-get remove"; }
alive "$pid" && fail "apt-get remove left the daemon (pid $pid) running"
[ -e /usr/bin/static-macvlan ] && fail "apt-get remove left /usr/bin/static-macvlan"
[ -f /var/lib/static-macvlan/data.mdb ] || fail "apt-get remove deleted the state directory"
pass "apt-get remove stopped the daemon and kept /var/lib/static-macvlan"

# 5. Re-install finds the book; purge leaves nothing.
apt-get install -y -qq "$DEB" >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; fail "apt-get install (again)"; }
service_answers
[ "$(reserved)" = 192.0.2.10 ] || fail "a re-install after remove lost the reservation"
pass "a re-install after remove finds the reservation"
dpkg -L static-macvlan | while read -r f; do if [ -f "$f" ]; then echo "$f"; fi; done > "$WORK/files"
pid=$(cat /run/static-macvlan.pid)
apt-get purge -y -qq static-macvlan >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; fail "apt-get purge"; }
alive "$pid" && fail "apt-get purge left the daemon (pid $pid) running"
left=$(while read -r f; do if [ -e "$f" ]; then echo "$f"; fi; done < "$WORK/files")
[ -z "$left" ] || fail "apt-get purge left: $left"
for f in /var/lib/static-macvlan /var/log/static-macvlan.log /run/static-macvlan.pid; do
  [ -e "$f" ] && fail "apt-get purge left $f"
done
ls /etc/rc?.d/*static-macvlan* >/dev/null 2>&1 && fail "apt-get purge left rc.d links"
dpkg-query -W -f='${Status}' static-macvlan 2>/dev/null | grep -q 'installed\|config-files' && fail "dpkg still knows the package"
pass "apt-get purge: no daemon, none of the package's $(wc -l < "$WORK/files") files, no state, log or rc.d link"

# 6. A sysvinit host: sysv-rc depends on insserv, and with it update-rc.d orders the boot by the
# LSB headers: X-Start-Before: docker puts the plugin's start before dockerd's.
insserv_deb=$(ls /var/cache/static-macvlan-test/insserv_*.deb 2>/dev/null | tail -1) ||
  fail "no insserv .deb in /var/cache/static-macvlan-test (scripts/install-deps.sh --test keeps one)"
dpkg -i "$insserv_deb" >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; fail "dpkg -i $insserv_deb"; }
if [ ! -e /etc/init.d/docker ]; then  # docker.io ships one; a stand-in with its LSB header
  printf '#!/bin/sh\n### BEGIN INIT INFO\n# Provides: docker\n# Required-Start: $remote_fs\n# Required-Stop: $remote_fs\n# Default-Start: 2 3 4 5\n# Default-Stop: 0 1 6\n### END INIT INFO\n' >/etc/init.d/docker
  chmod 0755 /etc/init.d/docker
fi
update-rc.d docker defaults >/dev/null 2>&1 || true
apt-get install -y -qq "$DEB" >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; fail "apt-get install (with insserv)"; }
rc_links_exist || fail "no rc.d links with insserv: $(ls /etc/rc?.d/*static-macvlan 2>&1 | paste -sd ' ')"
ours=$(start_number static-macvlan) || fail "no start link of static-macvlan in /etc/rc2.d"
docker=$(start_number docker) || fail "no start link of docker in /etc/rc2.d"
[ "$((10#$ours))" -lt "$((10#$docker))" ] || fail "at boot static-macvlan (S$ours) does not start before docker (S$docker)"
pass "with insserv (a sysvinit host) static-macvlan starts at boot before docker: S$ours < S$docker in /etc/rc2.d"
apt-get purge -y -qq static-macvlan >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; fail "apt-get purge (with insserv)"; }
ls /etc/rc?.d/*static-macvlan* >/dev/null 2>&1 && fail "apt-get purge (with insserv) left rc.d links"
pass "apt-get purge (with insserv) removed the rc.d links"
echo "deb_test.sh: $PASSED passed"
