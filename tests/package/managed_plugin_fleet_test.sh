#!/bin/bash
# The managed plugin on a fleet's book, set up as docs/fleet.md says: a 3-member etcd 3.4 cluster
# that wants TLS client certificates (made here with openssl) and a user (etcdctl auth enable),
# the plugin's files in the etcd-credentials mount (a directory laid out as the host's
# /etc/static-macvlan/), and every fleet setting given with `docker plugin set`. On a private
# dockerd (tests/e2e/lib.sh) whose network namespace also holds the etcd members: a container gets
# an address from the pool, its reservation and lease are in etcd under the plugin's node name,
# rm + run keeps the address, metrics answer on SMV_METRICS_LISTEN, the files are read-only in
# the plugin; a wrong password is refused naming etcd's refusal, and the right one works again.
# Needs root, dockerd, etcd, etcdctl and openssl. Everything is ended by PID and removed on exit.
# Usage: tests/package/managed_plugin_fleet_test.sh build/static-macvlan build/package/plugin
set -euo pipefail
SMV=$(readlink -f "${1:?usage: managed_plugin_fleet_test.sh STATIC-MACVLAN-BINARY PLUGIN-DIR}")
PLUGIN_DIR=$(readlink -f "${2:?usage: managed_plugin_fleet_test.sh STATIC-MACVLAN-BINARY PLUGIN-DIR}")
[ -f "$PLUGIN_DIR/config.json" ] || { echo "managed_plugin_fleet_test.sh: no $PLUGIN_DIR/config.json (scripts/package.sh)" >&2; exit 1; }
for tool in etcd etcdctl openssl; do
  command -v "$tool" >/dev/null || { echo "managed_plugin_fleet_test.sh: no $tool (scripts/install-deps.sh --test)" >&2; exit 1; }
done
E2E_MANAGED_PLUGIN=1
# shellcheck source=../e2e/lib.sh
. "$(dirname "$0")/../e2e/lib.sh"
P=static-macvlan:latest
STORE=etcd://127.0.0.1:23790,127.0.0.1:23792,127.0.0.1:23794
PREFIX=/static-macvlan/v1/
METRICS=127.0.0.1:9617
NODE=fleet-host-a
USER_NAME=static-macvlan
PASSWORD='plugin pass-word'
ROOT_PASSWORD=root-secret
PKI=$E2E_DIR/pki           # the CA and the members' certificate: not the plugin's
CREDENTIALS=$E2E_DIR/etc   # the etcd-credentials mount's source, as the host's /etc would be
SEEN=/host/etc/static-macvlan  # $CREDENTIALS/static-macvlan, as the plugin sees it
VAR_LIB=$E2E_DIR/varlib    # state-parent: this host's /var/lib is never used

fleet_teardown() {
  local rc=$? pid
  set +e  # every step below runs, whatever fails
  d ps -aq 2>/dev/null | xargs -r "$DOCKER" -H "unix://$DOCKER_SOCK" rm -f >/dev/null 2>&1
  d network ls -q --filter type=custom 2>/dev/null | xargs -r "$DOCKER" -H "unix://$DOCKER_SOCK" network rm >/dev/null 2>&1
  d plugin disable -f "$P" >/dev/null 2>&1
  d plugin rm -f "$P" >/dev/null 2>&1
  if [ "$rc" -ne 0 ]; then tail -5 "$E2E_DIR"/etcd-m*.log >&2 2>/dev/null; fi
  for pid in $(cat "$E2E_DIR"/etcd-m*.pid 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
  for pid in $(cat "$E2E_DIR"/etcd-m*.pid 2>/dev/null); do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  (exit "$rc")
  e2e_teardown  # dockerd, namespaces, mounts, $E2E_DIR
}
trap fleet_teardown EXIT

# A CA, one certificate for the members (also etcdctl's client certificate here) and the plugin's
# client certificate, without a Common Name as etcd's JSON gateway wants it (docs/fleet.md).
make_certificates() {
  mkdir -p "$PKI" "$CREDENTIALS/static-macvlan"
  (
    cd "$PKI"
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    key ca.key && key member.key && key client.key
    openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj /CN=smv-fleet-test-ca
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >member.ext
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl req -new -key member.key -out member.csr -subj /CN=127.0.0.1
    openssl req -new -key client.key -out client.csr -subj /O=static-macvlan
    openssl x509 -req -in member.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out member.pem -days 2 \
      -extfile member.ext 2>/dev/null
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 \
      -extfile client.ext 2>/dev/null
  ) || fail "openssl could not make the test certificates"
  cp "$PKI/ca.pem" "$PKI/client.pem" "$CREDENTIALS/static-macvlan/"
  cp "$PKI/client.key" "$CREDENTIALS/static-macvlan/client-key.pem"
  echo "$PASSWORD" >"$CREDENTIALS/static-macvlan/etcd-password"  # with a newline, as an editor leaves it
  chmod 0700 "$CREDENTIALS/static-macvlan"
  chmod 0600 "$CREDENTIALS/static-macvlan/client-key.pem" "$CREDENTIALS/static-macvlan/etcd-password"
}

# etcdctl in dockerd's network namespace, as the cluster's administrator (root once auth is on).
etcdctl_admin() {
  in_host env ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:23790 --cacert "$PKI/ca.pem" \
    --cert "$PKI/member.pem" --key "$PKI/member.key" "$@"
}

start_etcd() {
  local i cluster=""
  for i in 0 1 2; do cluster+="${cluster:+,}m$i=http://127.0.0.1:$((23791 + 2 * i))"; done
  for i in 0 1 2; do
    local client=https://127.0.0.1:$((23790 + 2 * i)) peer=http://127.0.0.1:$((23791 + 2 * i))
    # nsenter execs etcd, so $! is etcd itself.
    nsenter --net="/run/netns/$HOST_NS" etcd --name "m$i" --data-dir "$E2E_DIR/etcd-m$i" \
      --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token smv-plugin-fleet \
      --cert-file "$PKI/member.pem" --key-file "$PKI/member.key" --trusted-ca-file "$PKI/ca.pem" \
      --client-cert-auth --heartbeat-interval 100 --election-timeout 1000 >"$E2E_DIR/etcd-m$i.log" 2>&1 &
    echo $! >"$E2E_DIR/etcd-m$i.pid"
  done
  for _ in $(seq 300); do
    etcdctl_admin --endpoints=https://127.0.0.1:23790,https://127.0.0.1:23792,https://127.0.0.1:23794 \
      endpoint health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "the 3 etcd members did not become healthy"
}

# A user that may read and write the plugin's prefix only; then authentication on.
enable_etcd_auth() {
  local command
  for command in "user add root:$ROOT_PASSWORD" "role add $USER_NAME" \
    "role grant-permission $USER_NAME --prefix=true readwrite /static-macvlan/" \
    "user grant-role $USER_NAME $USER_NAME" "auth enable"; do
    # shellcheck disable=SC2086  # one word per argument
    etcdctl_admin $command >/dev/null || fail "etcdctl $command"
  done
}

e2e_before_plugin() {
  mkdir "$VAR_LIB"
  make_certificates
  start_etcd
  etcdctl_admin user add "$USER_NAME:$PASSWORD" >/dev/null || fail "etcdctl user add $USER_NAME"
  enable_etcd_auth
}
e2e_setup
pass "a 3-member etcd 3.4 cluster with client TLS and authentication answers"
plugin_log() { grep 'plugin=' "$DOCKERD_LOG" | tail -30 >&2 || true; }

# The shared book's keys under $1 (a NUL in a key shown as '|'), one "key value" line each.
etcd_book() {
  etcdctl_admin --user "root:$ROOT_PASSWORD" get --prefix "$PREFIX$1" | tr '\0' '|' | paste -d ' ' - -
}

d plugin create "$P" "$PLUGIN_DIR" >/dev/null || fail "docker plugin create $P $PLUGIN_DIR"
# As docs/fleet.md gives it, but for the two sources this test has its own directories for.
d plugin set "$P" engine.source="$DOCKER_SOCK" state-parent.source="$VAR_LIB" \
  etcd-credentials.source="$CREDENTIALS" SMV_LOG_LEVEL=debug \
  SMV_STORE="$STORE" SMV_NODE_NAME="$NODE" \
  SMV_ETCD_CACERT="$SEEN/ca.pem" SMV_ETCD_CERT="$SEEN/client.pem" SMV_ETCD_KEY="$SEEN/client-key.pem" \
  SMV_ETCD_USER="$USER_NAME" SMV_ETCD_PASSWORD_FILE="$SEEN/etcd-password" \
  SMV_METRICS_LISTEN="$METRICS" || fail "docker plugin set"
d plugin enable "$P" >/dev/null || { plugin_log; fail "docker plugin enable on the etcd store"; }
grep -q "address book shared in etcd $STORE as node \\\\\"$NODE\\\\\" over TLS as etcd user \\\\\"$USER_NAME\\\\\"" \
  "$DOCKERD_LOG" || { plugin_log; fail "the plugin does not log its book in etcd over TLS as $USER_NAME"; }
pass "docker plugin enable: the book is in etcd $STORE over TLS as user $USER_NAME, node $NODE"
case " $(d plugin inspect -f '{{.Settings.Env}}' "$P" | tr -d '[]') " in
  *" SMV_NODE_NAME=$NODE "*" SMV_ETCD_USER=$USER_NAME "* | *" SMV_ETCD_USER=$USER_NAME "*" SMV_NODE_NAME=$NODE "*) ;;
  *) fail "docker plugin inspect -f '{{.Settings.Env}}' lacks the settings: $(d plugin inspect -f '{{.Settings.Env}}' "$P")" ;;
esac
pass "docker plugin inspect -f '{{.Settings.Env}}' lists the settings as NAME=VALUE (docs/fleet.md)"

d network create -d "$P" --ipam-driver "$P" --subnet 192.0.2.0/24 --gateway 192.0.2.254 \
  --ip-range 192.0.2.0/26 -o parent=eth1 lan >/dev/null || { plugin_log; fail "network create on the etcd store"; }
d run -d --name a-0 --network lan smv-bb:latest sleep 3600 >/dev/null || { plugin_log; fail "run a-0"; }
first=$(ip_of a-0 lan)
case "$first" in 192.0.2.*) [ "${first##*.}" -ge 1 ] && [ "${first##*.}" -le 63 ] ;; *) false ;; esac ||
  fail "a-0 got \"$first\", not an address of the pool 192.0.2.0/26"
in_switch ping -c1 -W2 "$first" >/dev/null || fail "the switch cannot reach a-0 at $first"
pass "a-0 runs at $first, from the pool 192.0.2.0/26, and answers the switch"

reservation=$(etcd_book reservation/ | grep '|a-0 ') || fail "no reservation of a-0 in etcd: $(etcd_book reservation/)"
expect_eq "$(jq -r .address <<<"${reservation#* }")" "$first" "etcd holds a-0's reservation of $first"
lease=$(etcd_book lease/ | grep "|$first ") || fail "no lease of $first in etcd: $(etcd_book lease/)"
expect_eq "$(jq -r '"\(.name) \(.node)"' <<<"${lease#* }")" "a-0 $NODE" "etcd holds the lease of $first for a-0 on node $NODE"

d rm -f a-0 >/dev/null
d run -d --name a-0 --network lan smv-bb:latest sleep 3600 >/dev/null || fail "run a-0 again"
expect_eq "$(ip_of a-0 lan)" "$first" "rm + run: a-0 keeps $first"
metrics=$(in_host curl -sf "http://$METRICS/metrics") || fail "GET http://$METRICS/metrics (SMV_METRICS_LISTEN)"
grep -q '^static_macvlan_' <<<"$metrics" || fail "http://$METRICS/metrics has no static_macvlan_ metric"
pass "SMV_METRICS_LISTEN: the plugin serves its metrics on $METRICS"
# The plugin sees its files at $SEEN and cannot change them (its rootfs has no shell: its mount
# namespace is reached through /proc/PID/root).
plugin_id=$(d plugin inspect -f '{{.Id}}' "$P")
plugin_pid=$(in_docker_ns ctr --address /run/docker/containerd/containerd.sock -n plugins.moby task ls |
  awk -v id="$plugin_id" '$1 == id {print $2}')
[ -n "$plugin_pid" ] || fail "no containerd task for the plugin $plugin_id"
expect_eq "$(cat "/proc/$plugin_pid/root$SEEN/etcd-password")" "$PASSWORD" "the plugin reads its password file at $SEEN"
if touch "/proc/$plugin_pid/root$SEEN/written-by-the-plugin" 2>/dev/null; then
  fail "the etcd-credentials mount is writable inside the plugin"
fi
[ ! -e "$CREDENTIALS/static-macvlan/written-by-the-plugin" ] || fail "a write inside the plugin reached $CREDENTIALS"
pass "the etcd-credentials mount is read-only inside the plugin"

# A wrong password: the plugin does not start, and says why (dockerd's log holds the plugin's).
d rm -f a-0 >/dev/null
d plugin disable -f "$P" >/dev/null || fail "plugin disable"
echo "not-the-password" >"$CREDENTIALS/static-macvlan/wrong-password"
d plugin set "$P" SMV_ETCD_PASSWORD_FILE="$SEEN/wrong-password" || fail "docker plugin set SMV_ETCD_PASSWORD_FILE"
log_from=$(wc -l <"$DOCKERD_LOG")
if refused=$(d plugin enable "$P" 2>&1); then
  plugin_log
  fail "docker plugin enable with a wrong etcd password succeeded: $refused"
fi
said=$(tail -n "+$((log_from + 1))" "$DOCKERD_LOG" | grep 'plugin=' | grep -o 'etcd refused the credentials of [^"]*\\"[^\\]*\\"' | head -1)
expect_eq "$said" "etcd refused the credentials of --etcd-user \\\"$USER_NAME\\\"" \
  "a wrong password: enable fails ($refused), the plugin's log names etcd's refusal of $USER_NAME"
expect_eq "$(d plugin ls --format '{{.Enabled}}')" false "the plugin stays disabled after the refused enable"

# The right password again. dockerd keeps restarting a plugin whose enable failed, and a restart
# that answers enables it; until then `docker plugin enable` may say "id already in use".
d plugin set "$P" SMV_ETCD_PASSWORD_FILE="$SEEN/etcd-password" || fail "docker plugin set SMV_ETCD_PASSWORD_FILE back"
for _ in $(seq 60); do
  [ "$(d plugin ls --format '{{.Enabled}}')" = true ] && break
  d plugin enable "$P" >/dev/null 2>&1 || sleep 1
done
expect_eq "$(d plugin ls --format '{{.Enabled}}')" true "the right password again: the plugin is enabled"
d run -d --name a-0 --network lan smv-bb:latest sleep 3600 >/dev/null || { plugin_log; fail "run a-0 after the enable"; }
expect_eq "$(ip_of a-0 lan)" "$first" "the right password again: a-0 gets $first from the book in etcd"
echo "managed_plugin_fleet_test.sh: $E2E_PASSED passed"
