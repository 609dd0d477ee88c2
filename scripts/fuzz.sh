#!/bin/bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 60), the corpus
# seeded from the distinct dockerd 20.10 requests in tests/fixtures/fuzz-seeds.jsonl (one
# {"endpoint", "request"} per line, taken from the captured calls). Crashes are saved
# as tests/fuzz/crash-* and fail the run; turn each into a regression test.
# Usage: scripts/fuzz.sh [SECONDS]     (long run: scripts/fuzz.sh 3600)
# SMV_FUZZ_BUILD_DIR=DIR runs the targets of a build already configured with clang and -DSMV_FUZZ=ON
# (scripts/test.sh's sanitizer build, at -O1: 65-95 % of the runs per second, no second compile);
# without it, a RelWithDebInfo build of its own in build-fuzz/.
# SMV_FUZZ_RUNS=N runs each target for N inputs instead of SECONDS (scripts/fuzz-long.sh);
# SMV_FUZZ_TARGETS="fuzz_parsers ..." runs only those.
# Inputs reach the 1 MiB body limit (-max_len), where a body nested 200,000 deep once crashed the
# daemon; one such body is in the corpus. Each target ends with a "figures" line.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
runs=${SMV_FUZZ_RUNS:-}
# daemon/api/plugin_api.h kMaxBodyBytes, plus the API target's path byte.
max_len=$(( (1 << 20) + 1 ))
build=${SMV_FUZZ_BUILD_DIR:-build-fuzz}
if [ -z "${SMV_FUZZ_BUILD_DIR:-}" ]; then
  cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DSMV_FUZZ=ON -DBUILD_TESTING=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target fuzz_plugin_api fuzz_parsers fuzz_http_body
corpus=$build/corpus
mkdir -p "$corpus/api" "$corpus/parsers" "$corpus/http_body"
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
# CreateNetwork ({"a": 199,999 nested arrays}): the body that overflowed the stack.
{ printf '\x02{"a":'; head -c 199999 /dev/zero | tr '\0' '['; head -c 199999 /dev/zero | tr '\0' ']'; printf '}'; } \
  > "$corpus/api/seed-deep"
# Connection bytes after the headers; the first byte: odd = chunked, and the read size.
printf '\x01{"Pool":"192.0.2.0/24"}' > "$corpus/http_body/seed-length"
printf '\x0f5;x=y\r\n{"a":\r\n3\r\n"b"\r\n1\r\n}\r\n0\r\nTrailer: t\r\n\r\n' > "$corpus/http_body/seed-chunked"
find "$corpus" -type f -empty -delete
if [ -n "$runs" ]; then limit=(-runs="$runs"); else limit=(-max_total_time="$seconds"); fi
status=0
for target in ${SMV_FUZZ_TARGETS:-fuzz_plugin_api fuzz_parsers fuzz_http_body}; do
  dir=$corpus/${target#fuzz_}; [ "$target" = fuzz_plugin_api ] && dir=$corpus/api
  echo "== $target for $([ -n "$runs" ] && echo "$runs runs" || echo "${seconds}s") (corpus $(ls "$dir" | wc -l) files, max_len $max_len)"
  artifacts_before=$(ls tests/fuzz | grep -c '^crash-' || true)
  started=$(date +%s.%N)
  rc=0
  "$build/tests/fuzz/$target" "$dir" "${limit[@]}" -max_len="$max_len" -rss_limit_mb=2048 \
    -artifact_prefix=tests/fuzz/crash- -print_final_stats=1 2>"$build/$target.log" || rc=$?
  [ "$rc" -eq 0 ] || status=1
  # libFuzzer stops at the first crash, leak, timeout or OOM, each saved as an artifact; 72: ^C.
  crashes=$(( $(ls tests/fuzz | grep -c '^crash-' || true) - artifacts_before ))
  [ "$rc" -ne 72 ] || echo "$target: interrupted before its end (the figures are those of the part that ran)"
  elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|SUMMARY" "$build/$target.log" || true
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$target.log" | tail -1)
  printf 'figures target=%s executions=%s seconds=%.0f exec_per_s=%.0f crashes=%d max_len=%d\n' "$target" \
    "${executions:-0}" "$elapsed" "$(awk -v n="${executions:-0}" -v s="$elapsed" 'BEGIN { print n / s }')" "$crashes" "$max_len"
done
exit $status
