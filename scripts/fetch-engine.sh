#!/bin/bash
# Fetches Debian trixie's Docker engine 26.1 (docker.io, docker-cli, containerd) and compose v2
# (docker-compose) with apt-get download against a private trixie source list (the system's
# sources stay untouched) and unpacks them with dpkg -x into
# /var/cache/static-macvlan-test/trixie/root. Their binaries run on bookworm; trixie's runc
# needs glibc 2.38, so bookworm's runc (on PATH) stays the runtime. Idempotent.
# Usage: scripts/fetch-engine.sh   (prints the root directory)
set -euo pipefail
base=/var/cache/static-macvlan-test/trixie
root=$base/root
packages=(docker.io docker-cli containerd docker-compose)
if [ -x "$root/usr/sbin/dockerd" ] && [ -x "$root/usr/libexec/docker/cli-plugins/docker-compose" ]; then
  echo "$root"
  exit 0
fi
mkdir -p "$base/etc" "$base/lists/partial" "$base/archives/partial" "$base/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
  > "$base/etc/sources.list"
touch "$base/etc/status"
apt_private=(-o Dir::Etc::SourceList="$base/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$base/lists" -o Dir::State::Status="$base/etc/status"
             -o Dir::Cache="$base" -o Dir::Cache::Archives="$base/archives" -o APT::Sandbox::User=root)
apt-get "${apt_private[@]}" update -qq >&2
(cd "$base/debs" && apt-get "${apt_private[@]}" download -qq "${packages[@]}" >&2)
rm -rf "$root.new"
for deb in "$base"/debs/*.deb; do dpkg -x "$deb" "$root.new"; done
rm -rf "$root"
mv "$root.new" "$root"
"$root/usr/sbin/dockerd" --version >&2
echo "$root"
