#!/bin/bash
# Installs every Debian bookworm package the build, the tests and the plugin need.
# Usage: scripts/install-deps.sh [--test]   (--test adds what the namespace, VLAN and e2e tiers need)
#        scripts/install-deps.sh --check    (installs nothing, needs no root: fails naming the missing
#                                            build packages; scripts/test.sh as a normal user)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
build=(build-essential cmake ninja-build pkg-config
       libcpp-httplib-dev nlohmann-json3-dev libnl-3-dev libnl-route-3-dev liblmdb-dev libssl-dev
       libspdlog-dev libfmt-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev prometheus-cpp-dev
       help2man)
runtime=(iproute2)
test=(qemu-system-x86 busybox-static tcpdump iputils-ping docker.io docker-compose curl jq util-linux
      clang libclang-rt-14-dev clang-format-14 clang-tidy-14 lmdb-utils etcd-server etcd-client openssl lintian)
pkgs=("${build[@]}" "${runtime[@]}")
if [ "${1:-}" = "--test" ]; then pkgs+=("${test[@]}"); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${1:-}" = "--check" ]; then
  [ ${#missing[@]} -eq 0 ] && exit 0
  echo "install-deps.sh: missing to build and run the unit tier: ${missing[*]}" >&2
  echo "install-deps.sh: install them with: sudo scripts/install-deps.sh" >&2
  exit 1
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# promtool (tests check the metrics output with it): only the binary is unpacked from Debian's
# prometheus package, whose installation would also start a Prometheus server.
promtool=/var/cache/static-macvlan-test/promtool
if [ "${1:-}" = "--test" ] && [ ! -x "$promtool" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download -qq prometheus || { apt-get update -qq && apt-get download -qq prometheus; }; })
  dpkg -x "$tmp"/prometheus_*.deb "$tmp/unpacked"
  install -D -m 0755 "$tmp/unpacked/usr/bin/promtool" "$promtool"
  rm -rf "$tmp"
fi
# The second engine of the e2e tier: Debian trixie's dockerd 26.1 + compose v2, unpacked in a cache
# directory (the system's sources and packages stay bookworm's).
if [ "${1:-}" = "--test" ]; then "$(dirname "$0")/fetch-engine.sh" >/dev/null; fi
