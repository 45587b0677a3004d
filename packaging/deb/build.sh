#!/usr/bin/env bash
# Builds lfleet-agent and lfleet-coordinator .debs with dpkg-deb from built binaries.
#   packaging/deb/build.sh OUTDIR [BINDIR]
# BINDIR defaults to target/release. Config files are conffiles; units, tmpfiles and kernel
# hooks are installed; the maintainer scripts (beside this file) honour DPKG_ROOT, so the
# packages can be installed into and purged from a scratch root
# (dpkg --root=R --force-script-chrootless). DEB_COMPRESSION=none|gzip|xz (default xz).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$1"
bin="${2:-$repo/target/release}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)"
arch="$(dpkg --print-architecture)"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

put() { # mode source destination
  install -D -m "$1" "$2" "$3"
}

# --- lfleet-agent
a="$work/agent"
put 0755 "$bin/lfleet-agent" "$a/usr/bin/lfleet-agent"
put 0644 "$repo/systemd/lfleet-agent.service" "$a/lib/systemd/system/lfleet-agent.service"
put 0644 "$repo/systemd/lfleet-lnet.service" "$a/lib/systemd/system/lfleet-lnet.service"
put 0644 "$repo/systemd/tmpfiles.d/lfleet.conf" "$a/usr/lib/tmpfiles.d/lfleet.conf"
put 0755 "$repo/packaging/kernel/postinst.d/zz-lfleet-agent" "$a/etc/kernel/postinst.d/zz-lfleet-agent"
put 0755 "$repo/packaging/kernel/install.d/90-lfleet-agent.install" "$a/usr/lib/kernel/install.d/90-lfleet-agent.install"
put 0644 "$repo/packaging/examples/agent.toml" "$a/etc/lfleet/agent.toml"
put 0644 "$repo/README.md" "$a/usr/share/doc/lfleet-agent/README.md"
mkdir -p "$a/DEBIAN"
cat >"$a/DEBIAN/control" <<CONTROL
Package: lfleet-agent
Version: $version
Architecture: $arch
Maintainer: lfleet <lfleet@example.invalid>
Section: admin
Priority: optional
Depends: systemd
Description: lfleet node agent for Lustre clients
 Installs the kernel-matched Lustre client, configures LNet, owns its fstab lines,
 mounts, checks Lustre, InfiniBand and accelerated-networking health and reports to
 the lfleet coordinator.
CONTROL
echo /etc/lfleet/agent.toml >"$a/DEBIAN/conffiles"
for script in postinst prerm postrm; do put 0755 "$here/agent/$script" "$a/DEBIAN/$script"; done
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$a" "$out/lfleet-agent_${version}_${arch}.deb" >/dev/null

# --- lfleet-coordinator (with the lfleet CLI)
c="$work/coordinator"
put 0755 "$bin/lfleet-coordinator" "$c/usr/bin/lfleet-coordinator"
put 0755 "$bin/lfleet" "$c/usr/bin/lfleet"
put 0644 "$repo/systemd/lfleet-coordinator.service" "$c/lib/systemd/system/lfleet-coordinator.service"
put 0644 "$repo/packaging/examples/coordinator.toml" "$c/etc/lfleet/coordinator.toml"
put 0644 "$repo/coordinator/README.md" "$c/usr/share/doc/lfleet-coordinator/README.md"
mkdir -p "$c/DEBIAN"
cat >"$c/DEBIAN/control" <<CONTROL
Package: lfleet-coordinator
Version: $version
Architecture: $arch
Maintainer: lfleet <lfleet@example.invalid>
Section: admin
Priority: optional
Depends: systemd
Description: lfleet coordinator and the lfleet CLI
 Pushes mount configuration to lfleet agents, keeps the fleet's health view, and drains
 unhealthy nodes from Slurm without touching drains it did not make.
CONTROL
echo /etc/lfleet/coordinator.toml >"$c/DEBIAN/conffiles"
for script in postinst prerm postrm; do put 0755 "$here/coordinator/$script" "$c/DEBIAN/$script"; done
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$c" "$out/lfleet-coordinator_${version}_${arch}.deb" >/dev/null
ls "$out"/*.deb
