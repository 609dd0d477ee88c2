#!/bin/bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 60), the corpus
# seeded from the distinct dockerd 20.10 requests in tests/fixtures/fuzz-seeds.jsonl (one
# {"endpoint", "request"} per line, taken from the captured calls). Crashes are saved
# as tests/fuzz/crash-* and fail the run; turn each into a regression test.
# Usage: scripts/fuzz.sh [SECONDS]     (long run: scripts/fuzz.sh 3600)
# SMV_FUZZ_BUILD_DIR=DIR runs the targets of a build already configured with clang and -DSMV_FUZZ=ON
# (scripts/test.sh's sanitizer build, at -O1: 65-95 % of the runs per second, no second compile);
# without it, a RelWithDebInfo build of its own in build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=${SMV_FUZZ_BUILD_DIR:-build-fuzz}
if [ -z "${SMV_FUZZ_BUILD_DIR:-}" ]; then
  cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DSMV_FUZZ=ON -DBUILD_TESTING=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target fuzz_plugin_api fuzz_parsers
corpus=$build/corpus
mkdir -p "$corpus/api" "$corpus/parsers"
paths=(Plugin.Activate NetworkDriver.GetCapabilities NetworkDriver.CreateNetwork NetworkDriver.DeleteNetwork
       NetworkDriver.CreateEndpoint NetworkDriver.DeleteEndpoint NetworkDriver.EndpointOperInfo NetworkDriver.Join
       NetworkDriver.Leave IpamDriver.GetCapabilities IpamDriver.RequestPool IpamDriver.ReleasePool
       IpamDriver.RequestAddress IpamDriver.ReleaseAddress)
seeds=tests/fixtures/fuzz-seeds.jsonl
[ -f "$seeds" ] || { echo "fuzz.sh: missing fixture: $seeds" >&2; exit 1; }
# One jq pass per field over all seeds, aligned by line (a jq per seed and field took a minute).
mapfile -t endpoints < <(jq -r '.endpoint' "$seeds")
mapfile -t requests < <(jq -c '.request // null' "$seeds")
mapfile -t options < <(jq -r '[.request.Options["com.docker.network.generic"]? // {} | to_entries[]
                               | "\(.key)=\(.value)"] | join("\u001f")' "$seeds")
mapfile -t pools < <(jq -r '(.request.Pool? // null) | if . == null then "<none>" else . end' "$seeds")
for n in "${!endpoints[@]}"; do
  for i in "${!paths[@]}"; do
    if [ "${paths[$i]}" = "${endpoints[$n]}" ]; then
      { printf "\\x$(printf %02x "$i")"; [ "${requests[$n]}" = null ] || echo "${requests[$n]}"; } > "$corpus/api/$n"
    fi
  done
  [ -z "${options[$n]}" ] || printf '%s\n' "${options[$n]}" | tr '\037' '\n' > "$corpus/parsers/opt-$n"
  [ "${pools[$n]}" = "<none>" ] || echo "${pools[$n]}" > "$corpus/parsers/pool-$n"
done
printf 'parent=eth1\nvlan=228\nroutes=10.254.0.0/16 via 192.0.2.254; 2001:db8::/32\nmtu=1400\n' > "$corpus/parsers/seed-opts"
printf '192.0.2.0/24|192.0.2.128/25' > "$corpus/parsers/seed-pool"
find "$corpus" -type f -empty -delete
status=0
for target in fuzz_plugin_api fuzz_parsers; do
  dir=$corpus/${target#fuzz_}; [ "$target" = fuzz_plugin_api ] && dir=$corpus/api
  echo "== $target for ${seconds}s (corpus $(ls "$dir" | wc -l) files)"
  if ! "$build/tests/fuzz/$target" "$dir" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -artifact_prefix=tests/fuzz/crash- -print_final_stats=1 2>"$build/$target.log"; then
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|SUMMARY" "$build/$target.log" || true
done
exit $status
