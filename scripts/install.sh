#!/bin/bash
# Installs static-macvlan on this host and starts it where dockerd discovers it
# (/run/docker/plugins/static-macvlan.sock), with its LMDB state in /var/lib/static-macvlan.
# Under systemd it installs and enables static-macvlan.service (ordered before docker.service);
# without systemd it starts the daemon in the background and writes /run/static-macvlan.pid.
# SMV_PREBUILT_BINARY=PATH installs that binary instead of building one (no packages installed, no
# build): tests/package/installed_intact_test.sh installs the tier's build this way.
set -euo pipefail
prebuilt=${SMV_PREBUILT_BINARY:+$(readlink -f "$SMV_PREBUILT_BINARY")}
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
if [ -n "${SMV_PREBUILT_BINARY:-}" ]; then
  if [ ! -f "$prebuilt" ] || [ ! -x "$prebuilt" ]; then
    echo "install.sh: SMV_PREBUILT_BINARY=$SMV_PREBUILT_BINARY is not an executable file" >&2
    exit 1
  fi
  binary=$prebuilt
else
  scripts/install-deps.sh
  BUILD_DIR=build-install scripts/build.sh -DBUILD_TESTING=OFF -DSMV_LTO=ON
  binary=build-install/static-macvlan
fi
install -m 0755 "$binary" /usr/local/bin/static-macvlan
if [ -d /run/systemd/system ]; then
  install -m 0644 plugin-config/static-macvlan.service /etc/systemd/system/static-macvlan.service
  systemctl daemon-reload
  systemctl enable --now static-macvlan.service
  systemctl restart static-macvlan.service
else
  if [ -f /run/static-macvlan.pid ] && kill -0 "$(cat /run/static-macvlan.pid)" 2>/dev/null; then
    kill "$(cat /run/static-macvlan.pid)"
    while kill -0 "$(cat /run/static-macvlan.pid)" 2>/dev/null; do sleep 0.1; done
  fi
  mkdir -p /var/log
  nohup /usr/local/bin/static-macvlan serve >>/var/log/static-macvlan.log 2>&1 &
  echo $! > /run/static-macvlan.pid
fi
for _ in $(seq 1 50); do
  [ -S /run/docker/plugins/static-macvlan.sock ] && break
  sleep 0.1
done
[ -S /run/docker/plugins/static-macvlan.sock ] || { echo "install.sh: the plugin did not start" >&2; exit 1; }
echo "static-macvlan is serving /run/docker/plugins/static-macvlan.sock"
