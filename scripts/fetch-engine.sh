#!/bin/bash
# Fetches a newer Docker engine than bookworm's 20.10 for the e2e tier: docker.io, docker-cli,
# containerd and compose v2 (docker-compose) from a Debian suite, with apt-get download against a
# private source list (the system's sources stay untouched), unpacked with dpkg -x into
# /var/cache/static-macvlan-test/SUITE/root. Their binaries run on bookworm (they need glibc
# <= 2.34); the newer suites' runc and tini-static need glibc 2.38, so bookworm's runc (on PATH)
# stays the runtime and nothing is apt-installed. Idempotent.
#   28  Debian sid: Docker 28.5.2, containerd 2.1, compose 2.40
#   26  Debian trixie: Docker 26.1, containerd 1.7, compose 2.26
# Without an argument both, 28 then 26 (what scripts/install-deps.sh --test fetches, one call each).
# Usage: scripts/fetch-engine.sh [28|26]   (prints the root directory, one per engine)
set -euo pipefail
if [ $# -eq 0 ]; then
  "$0" 28
  exec "$0" 26
fi
engine=$1
case $engine in
  28) suite=sid want_version=28.5.2 ;;
  26) suite=trixie want_version=26.1 ;;
  *) echo "fetch-engine.sh: engine '$engine': want 28 (sid) or 26 (trixie)" >&2; exit 2 ;;
esac
base=/var/cache/static-macvlan-test/$suite
root=$base/root
packages=(docker.io docker-cli containerd docker-compose)
if [ -x "$root/usr/sbin/dockerd" ] && [ -x "$root/usr/libexec/docker/cli-plugins/docker-compose" ]; then
  echo "$root"
  exit 0
fi
mkdir -p "$base/etc" "$base/lists/partial" "$base/archives/partial" "$base/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
  > "$base/etc/sources.list"
touch "$base/etc/status"
apt_private=(-o Dir::Etc::SourceList="$base/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o Dir::State::Lists="$base/lists" -o Dir::State::Status="$base/etc/status"
             -o Dir::Cache="$base" -o Dir::Cache::Archives="$base/archives" -o APT::Sandbox::User=root)
apt-get "${apt_private[@]}" update -qq >&2
rm -f "$base"/debs/*.deb
(cd "$base/debs" && apt-get "${apt_private[@]}" download -qq "${packages[@]}" >&2)
rm -rf "$root.new"
for deb in "$base"/debs/*.deb; do dpkg -x "$deb" "$root.new"; done
# The suite moves on: say so when it no longer carries the version the tests were written for.
version=$("$root.new/usr/sbin/dockerd" --version)
case $version in
  *" $want_version"*) ;;
  *) echo "fetch-engine.sh: $suite now carries '$version', not $want_version" >&2 ;;
esac
rm -rf "$root"
mv "$root.new" "$root"
echo "$version" >&2
echo "$root"
