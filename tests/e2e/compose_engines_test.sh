#!/bin/bash
# Compose on the engine E2E_ENGINE names (20.10: dockerd 20.10 + compose v1; 28: Debian sid's
# dockerd 28.5.2 + compose v2 2.40; 26: trixie's dockerd 26.1 + compose v2 2.26; see lib.sh):
# every docs/examples project that needs no 802.1Q keeps each service's addresses across up,
# --force-recreate and down + up; a six-service project
# without ipv4_address, pinned with `static-macvlan compose pin`, keeps all six across down + up
# and --force-recreate although its services start in parallel; on 28 and 26 also the per-endpoint
# MAC (API >= 1.44) and compose v2's container names.
# Usage: E2E_ENGINE=20.10|28|26 tests/e2e/compose_engines_test.sh build/static-macvlan
set -euo pipefail
SMV=$(readlink -f "${1:?usage: compose_engines_test.sh STATIC-MACVLAN-BINARY}")
EXAMPLES=$(readlink -f "$(dirname "$0")/../../docs/examples")
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
trap e2e_teardown EXIT
e2e_setup
# busybox's sleep as PID 1 ignores SIGTERM, so each compose stop would wait its 10 s grace; in
# this test's image `sleep` is a shell that exits on SIGTERM (dockerd 20.10's import takes no
# STOPSIGNAL). The addresses, not the stop, are what is tested.
cp -a "$E2E_DIR/image" "$E2E_DIR/image-kill"
rm "$E2E_DIR/image-kill/bin/sleep"
printf '#!/bin/sh\ntrap "exit 0" TERM\n/bin/busybox sleep "$@" &\nwait\n' > "$E2E_DIR/image-kill/bin/sleep"
chmod 0755 "$E2E_DIR/image-kill/bin/sleep"
tar -C "$E2E_DIR/image-kill" -c . | d import - smv-bb-kill:latest >/dev/null || fail "docker import smv-bb-kill"
export IMAGE=smv-bb-kill:latest PARENT=eth1 MGMT_PARENT=eth1
echo "# engine $(d version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), compose $(engine_compose version --short 2>/dev/null || engine_compose version | head -1)"

# "container network=address ..." for every container of project $1, sorted: what must not change.
addresses() {
  local id
  for id in $(d ps -aq --filter "label=com.docker.compose.project=$1"); do
    d inspect -f '{{.Name}}{{range $n, $s := .NetworkSettings.Networks}} {{$n}}={{$s.IPAddress}}{{end}}' "$id"
  done | sort | tr '\n' ';'
}
# The address of service $2 of project $1 on compose network key $3.
service_ip() {
  local id; id=$(d ps -q --filter "label=com.docker.compose.project=$1" --filter "label=com.docker.compose.service=$2")
  d inspect -f "{{(index .NetworkSettings.Networks \"$1_$3\").IPAddress}}" "$id"
}
up_down_cycle() {  # up_down_cycle PROJECT FILE...: up, then --force-recreate and down + up keep every address
  local project=$1; shift
  local files=() f
  for f in "$@"; do files+=(-f "$f"); done
  engine_compose -p "$project" "${files[@]}" up -d >"$E2E_DIR/compose.log" 2>&1 || { cat "$E2E_DIR/compose.log"; fail "$project: up"; }
  local first; first=$(addresses "$project")
  engine_compose -p "$project" "${files[@]}" up -d --force-recreate >"$E2E_DIR/compose.log" 2>&1 ||
    { cat "$E2E_DIR/compose.log"; fail "$project: up --force-recreate"; }
  expect_eq "$(addresses "$project")" "$first" "$project: --force-recreate keeps every address"
  engine_compose -p "$project" "${files[@]}" down >"$E2E_DIR/compose.log" 2>&1 || fail "$project: down"
  engine_compose -p "$project" "${files[@]}" up -d >"$E2E_DIR/compose.log" 2>&1 || { cat "$E2E_DIR/compose.log"; fail "$project: up again"; }
  expect_eq "$(addresses "$project")" "$first" "$project: down + up keeps every address"
}

# --- docs/examples ---------------------------------------------------------------------------
engine_compose -p static -f "$EXAMPLES/static-ipv4/compose.yaml" up -d >"$E2E_DIR/compose.log" 2>&1 ||
  { cat "$E2E_DIR/compose.log"; fail "static-ipv4: up"; }
expect_eq "$(service_ip static web lan) $(service_ip static db lan)" "192.0.2.10 192.0.2.11" \
  "static-ipv4: each service on its ipv4_address"
in_switch ping -c1 -W2 192.0.2.10 >/dev/null || fail "static-ipv4: the switch cannot reach web"
up_down_cycle static "$EXAMPLES/static-ipv4/compose.yaml"
engine_compose -p static -f "$EXAMPLES/static-ipv4/compose.yaml" down >/dev/null 2>&1

engine_compose -p sticky -f "$EXAMPLES/sticky-dynamic/compose.yaml" up -d >/dev/null 2>&1 || fail "sticky-dynamic: up"
app=$(service_ip sticky app lan)
case "$app" in 192.0.2.6[4-9] | 192.0.2.[7-9][0-9] | 192.0.2.1[01][0-9] | 192.0.2.12[0-7]) ;;
  *) fail "sticky-dynamic: app got \"$app\", outside ip_range 192.0.2.64/26" ;; esac
pass "sticky-dynamic: app got $app from ip_range"
up_down_cycle sticky "$EXAMPLES/sticky-dynamic/compose.yaml"
engine_compose -p sticky -f "$EXAMPLES/sticky-dynamic/compose.yaml" down >/dev/null 2>&1

engine_compose -p two -f "$EXAMPLES/two-networks/compose.yaml" up -d >/dev/null 2>&1 || fail "two-networks: up"
expect_eq "$(service_ip two router front)" 192.0.2.20 "two-networks: router on its front ipv4_address"
mgmt=$(service_ip two router mgmt)
[ -n "$mgmt" ] || fail "two-networks: router has no mgmt address"
pass "two-networks: router also has $mgmt on mgmt"
up_down_cycle two "$EXAMPLES/two-networks/compose.yaml"
engine_compose -p two -f "$EXAMPLES/two-networks/compose.yaml" down >/dev/null 2>&1

# --- six services without ipv4_address, pinned ----------------------------------------------
cat > "$E2E_DIR/six.yaml" <<'YAML'
version: "2.4"
services:
  s1: {image: smv-bb-kill:latest, command: sleep 3600, networks: [lan]}
  s2: {image: smv-bb-kill:latest, command: sleep 3600, networks: [lan]}
  s3: {image: smv-bb-kill:latest, command: sleep 3600, networks: [lan]}
  s4: {image: smv-bb-kill:latest, command: sleep 3600, networks: [lan]}
  s5: {image: smv-bb-kill:latest, command: sleep 3600, networks: [lan]}
  s6: {image: smv-bb-kill:latest, command: sleep 3600, networks: [lan]}
networks:
  lan:
    driver: static-macvlan
    driver_opts: {parent: eth1}
    ipam:
      driver: static-macvlan
      config: [{subnet: 198.51.100.0/24, gateway: 198.51.100.254, ip_range: 198.51.100.0/26}]
YAML
engine_compose -p six -f "$E2E_DIR/six.yaml" up -d >/dev/null 2>&1 || fail "six: up"
before=$(addresses six)
[ "$(echo "$before" | tr ';' '\n' | grep -c '=198\.51\.100\.')" = 6 ] || fail "six: not all six got an address: $before"
in_docker_ns "$SMV" compose pin -p six --docker-host "unix://$DOCKER_SOCK" -o "$E2E_DIR/six.pin.yaml" 2>"$E2E_DIR/pin.err" ||
  { cat "$E2E_DIR/pin.err"; fail "compose pin"; }
grep -q "pinned 6 address(es) of project six" "$E2E_DIR/pin.err" || fail "compose pin: $(cat "$E2E_DIR/pin.err")"
pass "compose pin -p six wrote 6 addresses to an override file"
for s in 1 2 3 4 5 6; do
  want=$(echo "$before" | tr ';' '\n' | grep "/six[-_]s${s}[-_]1 " | sed 's/.*=//')
  got=$(jq -r ".services.s$s.networks.lan.ipv4_address" "$E2E_DIR/six.pin.yaml")
  [ "$got" = "$want" ] || fail "compose pin: s$s pinned to $got, it holds $want"
done
pass "each service is pinned to the address it holds"
engine_compose -p six -f "$E2E_DIR/six.yaml" down >/dev/null 2>&1 || fail "six: down"
up_down_cycle six "$E2E_DIR/six.yaml" "$E2E_DIR/six.pin.yaml"
expect_eq "$(addresses six)" "$before" "six pinned services: the addresses of the first up, after down + up twice"
in_docker_ns "$SMV" reservations ls > "$E2E_DIR/ls.txt"
grep -q "drifted" "$E2E_DIR/ls.txt" && fail "reservations ls shows drift after pinning: $(cat "$E2E_DIR/ls.txt")"
pass "reservations ls: no name drifted"
engine_compose -p six -f "$E2E_DIR/six.yaml" -f "$E2E_DIR/six.pin.yaml" down >/dev/null 2>&1

# --- engines 28 and 26: compose v2 names, per-endpoint MAC ----------------------------------
if [ -n "$E2E_COMPOSE_V2" ]; then
  echo "$before" | grep -q '/six-s1-1 ' || fail "compose v2 did not name containers <project>-<service>-<n>: $before"
  pass "compose v2 names containers <project>-<service>-<n> (six-s1-1)"
  d network create -d static-macvlan --ipam-driver static-macvlan --subnet 203.0.113.0/24 \
    --gateway 203.0.113.254 -o parent=eth1 epmac >/dev/null || fail "network epmac"
  d run -d --name m-0 --network name=epmac,mac-address=02:00:00:00:00:2a smv-bb:latest sleep 600 >/dev/null ||
    fail "run with a per-endpoint mac-address"
  m0=$(ip_of m-0 epmac)
  expect_eq "$(d inspect -f '{{(index .NetworkSettings.Networks "epmac").MacAddress}}' m-0)" 02:00:00:00:00:2a \
    "API 1.44 per-endpoint --network mac-address=... is the endpoint's MAC"
  expect_eq "$(d exec m-0 cat /sys/class/net/eth0/address)" 02:00:00:00:00:2a "... and eth0's"
  d rm -f m-0 >/dev/null
  d run -d --name m-0 --network epmac smv-bb:latest sleep 600 >/dev/null || fail "run m-0 again"
  expect_eq "$(ip_of m-0 epmac)" "$m0" "m-0 keeps $m0 without the per-endpoint MAC"
  d rm -f m-0 >/dev/null
  d network rm epmac >/dev/null
fi
echo "compose_engines_test.sh (engine $E2E_ENGINE): $E2E_PASSED passed"
