#!/bin/bash
# Builds static-macvlan's .deb and installs it on this host: the same package a production host
# gets (systemd unit or init script, /etc/default/static-macvlan, man page, bash completion).
#   1. scripts/install-deps.sh: the build packages only (no test library);
#   2. a RelWithDebInfo build with link-time optimisation and without the tests, in build-install/;
#   3. scripts/package.sh: build-install/package/static-macvlan_VERSION_amd64.deb;
#   4. apt-get install of that .deb, which starts the service: under systemd its unit (ordered
#      before docker.service), otherwise its init script (rc.d links ordered before docker's;
#      log in /var/log/static-macvlan.log). Where the package could not start it (no runlevel, as
#      in a container, or a /usr/sbin/policy-rc.d that forbids it) this script starts it.
# Run it again to upgrade (the address book in /var/lib/static-macvlan stays). Uninstall:
# apt-get remove static-macvlan (keeps the book) or apt-get purge static-macvlan (deletes it).
# A binary that an earlier install.sh put in /usr/local/bin, with its unit or process, is replaced.
# SMV_PREBUILT_DEB=PATH installs that .deb instead (no packages installed, no build):
# tests/package/installed_intact_test.sh installs the package tier's .deb this way.
set -euo pipefail
prebuilt=${SMV_PREBUILT_DEB:+$(readlink -f "$SMV_PREBUILT_DEB")}
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
SOCK=/run/docker/plugins/static-macvlan.sock
PIDFILE=/run/static-macvlan.pid

build_deb() {
  scripts/install-deps.sh
  BUILD_DIR=build-install scripts/build.sh -DBUILD_TESTING=OFF -DSMV_BENCH=OFF -DSMV_LTO=ON
  BUILD_DIR=build-install PACKAGE_DIR=build-install/package scripts/package.sh
  local version
  version=$(build-install/static-macvlan --version | awk '{print $2}')
  deb=$PWD/build-install/package/static-macvlan_${version}_amd64.deb
}

# Running: any state but Z (a stopped daemon whose parent does not reap stays a zombie).
alive() { local state; state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [ -n "$state" ] && [ "$state" != Z ]; }

# An earlier install.sh installed /usr/local/bin/static-macvlan with its own systemd unit, or
# without systemd a background process with /run/static-macvlan.pid. Both go, so that the
# package's unit and init script run /usr/bin/static-macvlan on the same state directory.
retire_binary_install() {
  [ -e /usr/local/bin/static-macvlan ] || return 0
  echo "install.sh: replacing the earlier installation of /usr/local/bin/static-macvlan with the .deb"
  local unit=/etc/systemd/system/static-macvlan.service
  if [ -f "$unit" ] && grep -q '/usr/local/bin/static-macvlan' "$unit"; then
    if [ -d /run/systemd/system ]; then systemctl disable --now static-macvlan.service || true; fi
    rm -f "$unit"
    if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
  fi
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || true
  if [ -n "$pid" ] && alive "$pid" && [ "$(readlink "/proc/$pid/exe")" = /usr/local/bin/static-macvlan ]; then
    kill "$pid"
    while alive "$pid"; do sleep 0.1; done
    rm -f "$PIDFILE"
  fi
  rm -f /usr/local/bin/static-macvlan
}

# The package's scripts start the service through invoke-rc.d / deb-systemd-invoke, which start
# nothing without a runlevel or when policy-rc.d forbids it; this command's promise is a running
# daemon of the installed version.
ensure_running() {
  local pid
  if [ -d /run/systemd/system ]; then
    pid=$(systemctl show -p MainPID --value static-macvlan.service) || true
  else
    pid=$(cat "$PIDFILE" 2>/dev/null) || true
  fi
  if [ -n "$pid" ] && [ "$pid" != 0 ] && alive "$pid" && [ "$(readlink "/proc/$pid/exe")" = /usr/bin/static-macvlan ]; then
    return 0
  fi
  echo "install.sh: the package did not (re)start the service (no runlevel here, or policy-rc.d forbids it)"
  if [ -d /run/systemd/system ]; then
    systemctl restart static-macvlan.service
  else
    /etc/init.d/static-macvlan restart
  fi
}

if [ -n "$prebuilt" ]; then
  if [ ! -f "$prebuilt" ] || [ "$(dpkg-deb -f "$prebuilt" Package 2>/dev/null)" != static-macvlan ]; then
    echo "install.sh: SMV_PREBUILT_DEB=$SMV_PREBUILT_DEB is not a static-macvlan .deb" >&2
    exit 1
  fi
  deb=$prebuilt
else
  build_deb
fi
retire_binary_install
# --reinstall: running install.sh again on a source of the same version still installs its build.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall "$deb"
ensure_running
for _ in $(seq 1 50); do
  [ -S "$SOCK" ] && break
  sleep 0.1
done
[ -S "$SOCK" ] || { echo "install.sh: the plugin did not start (see /var/log/static-macvlan.log)" >&2; exit 1; }
log="/var/log/static-macvlan.log"
if [ -d /run/systemd/system ]; then log="journalctl -u static-macvlan"; fi
echo "static-macvlan $(dpkg-query -W -f='${Version}' static-macvlan) is serving $SOCK"
echo "  log: $log; settings: /etc/default/static-macvlan; upgrade: run scripts/install.sh again"
echo "  uninstall: apt-get remove static-macvlan (keeps /var/lib/static-macvlan), apt-get purge static-macvlan (deletes it)"
