#!/bin/bash
# Packages the built daemon two ways, without a compiler on the Docker host:
#   build/plugin/                          a managed Docker plugin: config.json + rootfs/
#                                          (docker plugin create static-macvlan:VERSION build/plugin)
#   build/static-macvlan_VERSION_amd64.deb binary, systemd unit + init script, defaults file,
#                                          man page, bash completion
# Uses $BUILD_DIR/static-macvlan (default build/), building it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
binary=$build_dir/static-macvlan
[ -x "$binary" ] || scripts/build.sh
version=$("$binary" --version | awk '{print $2}')
[ -n "$version" ] || { echo "package.sh: $binary --version printed no version" >&2; exit 1; }
out=${PACKAGE_DIR:-$build_dir}

# The shared libraries the binary loads, with the dynamic loader.
libraries() { ldd "$binary" | awk '/=> \//{print $3} /^\t\/lib/{print $1}'; }

build_plugin() {
  local dir=$out/plugin
  rm -rf "$dir"
  # Mount points: the host's /var/lib (serve creates static-macvlan/ in it) and /proc/sys/net.
  mkdir -p "$dir/rootfs/usr/bin" "$dir/rootfs/run/docker/plugins" "$dir/rootfs/host/var/lib" \
    "$dir/rootfs/tmp" "$dir/rootfs/etc" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev" \
    "$dir/rootfs/host/proc/sys/net"
  install -m 0755 -s "$binary" "$dir/rootfs/usr/bin/static-macvlan"
  local lib
  for lib in $(libraries); do
    mkdir -p "$dir/rootfs$(dirname "$lib")"
    cp -L "$lib" "$dir/rootfs$lib"
  done
  # runc bind-mounts these over; they must exist in the image.
  touch "$dir/rootfs/etc/hosts" "$dir/rootfs/etc/resolv.conf" "$dir/rootfs/etc/hostname"
  echo "$version" > "$dir/rootfs/etc/static-macvlan-version"
  cp plugin-config/config.json "$dir/config.json"
  echo "package.sh: managed plugin in $dir ($(du -sh "$dir/rootfs" | cut -f1))"
}

# "pkg (>= version)" for each Debian package that ships one of the binary's libraries.
debian_depends() {
  local lib pkg
  for lib in $(libraries); do
    pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1) || true
    [ -z "$pkg" ] && pkg=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1)
    [ -n "$pkg" ] || { echo "package.sh: no Debian package owns $lib" >&2; exit 1; }
    echo "$pkg (>= $(dpkg-query -W -f='${Version}' "$pkg" | sed 's/-[^-]*$//'))"
  done | sort -u | paste -sd, | sed 's/,/, /g'
}

build_deb() {
  local stage=$out/deb
  local deb=$out/static-macvlan_${version}_amd64.deb
  rm -rf "$stage" "$deb"
  install -D -m 0755 -s "$binary" "$stage/usr/bin/static-macvlan"
  sed 's|/usr/local/bin/|/usr/bin/|' plugin-config/static-macvlan.service |
    install -D -m 0644 /dev/stdin "$stage/lib/systemd/system/static-macvlan.service"
  install -D -m 0755 plugin-config/static-macvlan.init "$stage/etc/init.d/static-macvlan"
  install -D -m 0644 plugin-config/default "$stage/etc/default/static-macvlan"
  # The man page and the completion, from the binary's own --help (every command and option).
  scripts/cli-docs.sh completion "$binary" |
    install -D -m 0644 /dev/stdin "$stage/usr/share/bash-completion/completions/static-macvlan"
  install -D -m 0644 plugin-config/debian/copyright "$stage/usr/share/doc/static-macvlan/copyright"
  # A native package's changelog: the version and where its history is.
  mkdir -p "$stage/usr/share/man/man8"
  printf 'static-macvlan (%s) unstable; urgency=medium\n\n  * Release %s; the change history is the git log.\n\n -- static-macvlan maintainers <maintainers@static-macvlan.invalid>  %s\n' \
    "$version" "$version" "$(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")" |
    gzip -9n > "$stage/usr/share/doc/static-macvlan/changelog.gz"
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s) scripts/cli-docs.sh man "$binary" "$version" |
    gzip -9n > "$stage/usr/share/man/man8/static-macvlan.8.gz"
  mkdir -p "$stage/DEBIAN"
  install -m 0755 plugin-config/debian/postinst plugin-config/debian/prerm plugin-config/debian/postrm "$stage/DEBIAN/"
  printf '/etc/default/static-macvlan\n/etc/init.d/static-macvlan\n' > "$stage/DEBIAN/conffiles"
  cat > "$stage/DEBIAN/control" <<CONTROL
Package: static-macvlan
Version: $version
Architecture: amd64
Maintainer: static-macvlan maintainers <maintainers@static-macvlan.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $(debian_depends), iproute2
Recommends: docker.io | docker-ce
Section: net
Priority: optional
Description: Docker network and IPAM plugin: macvlan on VLANs with sticky addresses
 static-macvlan puts containers directly on a physical LAN or VLAN (macvlan),
 creates the VLAN sub-interface itself, and gives a container the same IP
 address every time a container of that name comes back: after docker rm and
 docker run, a compose re-create, a dockerd restart or a host reboot.
 .
 The address book is an embedded LMDB database; several hosts on one VLAN can
 share one pool and one book through etcd.
CONTROL
  (cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
  dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
  echo "package.sh: $deb"
}

build_plugin
build_deb
