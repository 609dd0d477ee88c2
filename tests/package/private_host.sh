# shellcheck shell=bash
# A private copy of this machine for the package tests, which install, upgrade and purge the
# plugin. Sourced by deb_test.sh and installed_intact_test.sh. It is a network namespace with a
# mount and PID namespace of its own inside, in which
#   /usr /etc /var/lib /var/log /var/cache (and /lib /bin /sbin where they are not symlinks)
#     are overlays on themselves: what the test writes or deletes there (the package's files,
#     dpkg's database, /var/lib/static-macvlan, /var/log/static-macvlan.log, systemd and rc.d
#     links) lands in a tmpfs and vanishes with the namespace;
#   /run is a fresh tmpfs: no /run/static-macvlan.pid, no /run/docker/plugins/static-macvlan.sock,
#     no /run/systemd (so the package's scripts and install.sh never reach this host's systemd);
#   /proc shows only the namespace's processes: nothing run inside can signal the host's daemon.
# An installed plugin on this host (its book, log, pid file, socket and process) is therefore
# never seen nor touched. Before the caller runs anything inside, private_host_start proves the
# isolation (a file written inside each of those directories is absent outside) and refuses, with
# the reason, when it cannot be had.
#   private_host_start NAME DIR   NAME: the network namespace; DIR: an empty scratch directory
#                                 outside the overlaid ones (the layers are mounted on DIR/layers)
#   in_private CMD...             runs CMD inside, in the current directory
#   private_host_stop             kills the namespace's init, which ends every process inside; the
#                                 mounts go with the namespace; deletes the network namespace

PH_HOLDER=
PH_UNSHARE=
PH_NETNS=

# The directories the package, dpkg and apt write or delete in, as they are on this machine.
private_host_dirs() {
  local d
  for d in /usr /lib /lib64 /bin /sbin /etc /var/lib /var/log /var/cache; do
    if [ -d "$d" ] && [ ! -L "$d" ]; then echo "$d"; fi
  done
}

private_host_refuse() {
  echo "private_host.sh: cannot isolate this test from the host's installation: $*" >&2
  echo "private_host.sh: refusing to run (an installed static-macvlan must never be touched)" >&2
  [ -s "$PH_DIR/holder.err" ] && sed 's/^/  /' "$PH_DIR/holder.err" >&2
  return 1
}

private_host_start() {
  PH_NETNS=$1
  PH_DIR=$2
  case "$PH_DIR" in /usr/* | /etc/* | /var/lib/* | /var/log/* | /var/cache/* | /run/*)
    private_host_refuse "the scratch directory $PH_DIR lies in a directory that is overlaid" || return 1 ;;
  esac
  local dirs; dirs=$(private_host_dirs | paste -sd ' ')
  mkdir -p "$PH_DIR/layers"
  # Runs as the namespace's init; exits (and so refuses) at the first mount that fails.
  local setup="set -e; mount -t tmpfs -o mode=0700 smv-private-layers $PH_DIR/layers
    for d in $dirs; do
      n=\$(echo \"\$d\" | tr / _); mkdir -p $PH_DIR/layers/\$n/upper $PH_DIR/layers/\$n/work
      mount -t overlay smv-private -o lowerdir=\$d,upperdir=$PH_DIR/layers/\$n/upper,workdir=$PH_DIR/layers/\$n/work \$d
    done
    mount -t tmpfs -o mode=0755 smv-private-run /run
    mkdir -p /run/lock /run/docker/plugins
    echo ready > $PH_DIR/ready
    exec sleep infinity"
  ip netns add "$PH_NETNS" || { private_host_refuse "ip netns add $PH_NETNS failed"; return 1; }
  nsenter --net="/run/netns/$PH_NETNS" unshare --mount --propagation private --pid --fork --mount-proc \
    --kill-child sh -c "$setup" 2>"$PH_DIR/holder.err" &
  PH_UNSHARE=$!
  for _ in $(seq 200); do
    [ -s "$PH_DIR/ready" ] && break
    kill -0 "$PH_UNSHARE" 2>/dev/null || break
    sleep 0.05
  done
  [ -s "$PH_DIR/ready" ] || { private_host_refuse "the private mounts (overlays on $dirs; tmpfs on /run) failed"; return 1; }
  PH_HOLDER=$(pgrep -P "$PH_UNSHARE") || true
  [ -n "$PH_HOLDER" ] || { private_host_refuse "the namespace's init is gone"; return 1; }
  # shellcheck disable=SC2086  # one word per directory
  private_host_verify $dirs /run
}

in_private() { nsenter --target "$PH_HOLDER" --mount --net --pid --wd="$PWD" -- "$@"; }

# A file written inside each directory must be absent outside, and the host's processes invisible.
private_host_verify() {
  local marker=.smv-private-host-$$ d
  for d in "$@"; do
    in_private touch "$d/$marker" || { private_host_refuse "cannot write in $d inside the namespace"; return 1; }
    if [ -e "$d/$marker" ]; then
      rm -f "$d/$marker"
      private_host_refuse "$d/$marker written inside the namespace appeared on the host"
      return 1
    fi
    in_private rm -f "$d/$marker"
  done
  [ "$(in_private cat /proc/1/comm)" = sleep ] || { private_host_refuse "the namespace does not have its own PIDs"; return 1; }
  local p
  for p in /run/static-macvlan.pid /run/docker/plugins/static-macvlan.sock; do
    in_private test ! -e "$p" || { private_host_refuse "$p is visible inside the namespace"; return 1; }
  done
}

private_host_stop() {
  # Under set -e too: each step runs, whatever the one before it did.
  if [ -n "$PH_HOLDER" ]; then kill -KILL "$PH_HOLDER" 2>/dev/null || true; fi
  if [ -n "$PH_UNSHARE" ]; then
    kill -KILL "$PH_UNSHARE" 2>/dev/null || true
    wait "$PH_UNSHARE" 2>/dev/null || true
  fi
  if [ -n "$PH_NETNS" ]; then ip netns del "$PH_NETNS" 2>/dev/null || true; fi
  PH_HOLDER='' PH_UNSHARE='' PH_NETNS=''
}
