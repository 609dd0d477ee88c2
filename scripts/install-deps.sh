#!/bin/bash
# Installs the Debian bookworm packages static-macvlan needs, in three groups:
#   build  compiler, CMake, the libraries the daemon links, help2man and what scripts/package.sh
#          uses to make the .deb: all that scripts/install.sh needs (no test library)
#   unit   GoogleTest/GoogleMock and Google Benchmark: the unit tier's build (scripts/test.sh
#          builds the benchmarks too)
#   test   what the namespace, VLAN, e2e and package tiers run (QEMU, dockerd, etcd, lintian, ...)
# Usage: scripts/install-deps.sh            build (scripts/install.sh)
#        scripts/install-deps.sh --unit     build + unit
#        scripts/install-deps.sh --test     build + unit + test (scripts/test.sh as root)
#        scripts/install-deps.sh --check    installs nothing, needs no root: fails naming the missing
#                                           build and unit packages (scripts/test.sh as a normal user)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
mode=${1:-}
case "$mode" in "" | --unit | --test | --check) ;;
  *) echo "install-deps.sh: unknown option \"$mode\" (allowed: --unit, --test, --check)" >&2; exit 2 ;;
esac
build=(build-essential cmake ninja-build pkg-config
       libcpp-httplib-dev nlohmann-json3-dev libnl-3-dev libnl-route-3-dev liblmdb-dev libssl-dev
       libspdlog-dev libfmt-dev libcli11-dev prometheus-cpp-dev
       help2man iproute2)
unit=(libgtest-dev libgmock-dev libbenchmark-dev)
test=(qemu-system-x86 busybox-static tcpdump iputils-ping docker.io docker-compose curl jq util-linux
      clang libclang-rt-14-dev clang-format-14 clang-tidy-14 lmdb-utils etcd-server etcd-client openssl lintian)
pkgs=("${build[@]}")
case "$mode" in
  --unit | --check) pkgs+=("${unit[@]}") ;;
  --test) pkgs+=("${unit[@]}" "${test[@]}") ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "$mode" = --check ]; then
  [ ${#missing[@]} -eq 0 ] && exit 0
  echo "install-deps.sh: missing to build and run the unit tier: ${missing[*]}" >&2
  echo "install-deps.sh: install them with: sudo scripts/install-deps.sh --unit" >&2
  exit 1
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ "$mode" = --test ] || exit 0
# Packages the tests need as files, not installed on this host, in a cache directory:
#   promtool (tests check the metrics output with it): only the binary, from Debian's prometheus
#     package, whose installation would also start a Prometheus server;
#   insserv's .deb: tests/package/deb_test.sh installs it inside its private copy of this host, to
#     check the boot order a sysvinit host gives the init script (installing it here would
#     renumber this host's /etc/rc?.d links).
cache=/var/cache/static-macvlan-test
download() { (cd "$1" && { apt-get download -qq "$2" || { apt-get update -qq && apt-get download -qq "$2"; }; }); }
if [ ! -x "$cache/promtool" ]; then
  tmp=$(mktemp -d)
  download "$tmp" prometheus
  dpkg -x "$tmp"/prometheus_*.deb "$tmp/unpacked"
  install -D -m 0755 "$tmp/unpacked/usr/bin/promtool" "$cache/promtool"
  rm -rf "$tmp"
fi
if ! ls "$cache"/insserv_*.deb >/dev/null 2>&1; then
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  download "$tmp" insserv
  mv "$tmp"/insserv_*.deb "$cache/"
  rm -rf "$tmp"
fi
# The newer engines of the e2e tier: sid's Docker 28.5.2 + compose v2 2.40 and trixie's dockerd
# 26.1 + compose v2 2.26, unpacked in a cache directory (the system's sources and packages stay
# bookworm's). Once fetched they stay; sid moves on, and fetch-engine.sh says so when a fresh
# fetch no longer gets 28.5.2.
"$(dirname "$0")/fetch-engine.sh" 28 >/dev/null
"$(dirname "$0")/fetch-engine.sh" 26 >/dev/null
