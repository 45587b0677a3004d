#!/usr/bin/env bash
# Builds the lfleet-agent and lfleet-coordinator .debs with dpkg-deb from built binaries.
#   packaging/deb/build.sh OUTDIR [BINDIR]
# BINDIR defaults to target/release. The packages are lintian-clean: a DEP-5 copyright, a
# changelog, dependencies computed by dpkg-shlibdeps plus the programs the agent runs,
# md5sums, stripped binaries, manual pages, and every file in /etc a conffile. The
# shipped configurations are inert (packaging/common), so a fresh install starts harmlessly.
# The maintainer scripts (beside this file) honour DPKG_ROOT, so the packages can also be
# installed into and purged from a scratch root (dpkg --root=R --force-script-chrootless).
# Environment: DEB_COMPRESSION=none|gzip|xz (default xz); LFLEET_VERSION overrides the
# workspace version (a changelog entry is added for it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
common="$repo/packaging/common"
# shellcheck source=../common/inputs.sh
. "$repo/packaging/common/inputs.sh"
arch="$(dpkg --print-architecture)"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

put() { # mode source destination
  install -D -m "$1" "$2" "$3"
}

# The changelog: the packaged one, with an entry for an overriding version on top.
changelog="$work/changelog"
if [[ $version != "$(sed -n '1s/^lfleet (\([^)]*\)).*/\1/p' "$common/changelog")" ]]; then
  {
    printf 'lfleet (%s) unstable; urgency=medium\n\n  * Built from the lfleet source tree as version %s.\n\n' "$version" "$version"
    printf ' -- lfleet maintainers <lfleet@example.invalid>  %s\n\n' "$(date -R -u)"
    cat "$common/changelog"
  } >"$changelog"
else
  cp "$common/changelog" "$changelog"
fi

# The shared libraries the binaries link, as dpkg-shlibdeps resolves them on this machine.
shlibs() {
  local dir="$work/shlibs"
  mkdir -p "$dir/debian"
  printf 'Source: lfleet\n\nPackage: lfleet\nArchitecture: any\n' >"$dir/debian/control"
  (cd "$dir" && dpkg-shlibdeps -O "$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
}

# Files every package carries: docs, the copyright, the changelog, stripped binaries.
common_files() { # staging-dir package
  local root=$1 package=$2
  put 0644 "$common/copyright" "$root/usr/share/doc/$package/copyright"
  install -d -m 0755 "$root/usr/share/doc/$package"
  gzip -9n <"$changelog" >"$root/usr/share/doc/$package/changelog.gz"
  chmod 0644 "$root/usr/share/doc/$package/changelog.gz"
}

program() { # staging-dir name
  put 0755 "$bin/$2" "$1/usr/bin/$2"
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$1/usr/bin/$2"
  install -d -m 0755 "$1/usr/share/man/man1"
  gzip -9n <"$repo/packaging/man/$2.1" >"$1/usr/share/man/man1/$2.1.gz"
  chmod 0644 "$1/usr/share/man/man1/$2.1.gz"
}

finish() { # staging-dir package depends description-file
  local root=$1 package=$2 depends=$3
  mkdir -p "$root/DEBIAN"
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
  (cd "$root" && find etc -type f -printf '/%p\n' 2>/dev/null | sort) >"$root/DEBIAN/conffiles"
  local size
  size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
  {
    printf 'Package: %s\nSource: lfleet\nVersion: %s\nArchitecture: %s\n' "$package" "$version" "$arch"
    printf 'Maintainer: lfleet maintainers <lfleet@example.invalid>\nInstalled-Size: %s\n' "$size"
    printf 'Depends: %s\nSection: admin\nPriority: optional\n' "$depends"
    cat "$4"
  } >"$root/DEBIAN/control"
  for script in postinst prerm postrm; do
    # #LFLEET_PURGE# stands for the purge shared with the RPM (packaging/common).
    sed -e "/^#LFLEET_PURGE#\$/{r $common/agent-purge.sh" -e 'd}' \
      "$here/${package#lfleet-}/$script" >"$work/$script"
    put 0755 "$work/$script" "$root/DEBIAN/$script"
  done
  dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$root" \
    "$out/${package}_${version}_${arch}.deb" >/dev/null
}

# --- lfleet-agent
a="$work/agent"
program "$a" lfleet-agent
put 0644 "$repo/systemd/lfleet-agent.service" "$a/lib/systemd/system/lfleet-agent.service"
put 0644 "$repo/systemd/lfleet-lnet.service" "$a/lib/systemd/system/lfleet-lnet.service"
put 0644 "$repo/systemd/tmpfiles.d/lfleet-agent.conf" "$a/usr/lib/tmpfiles.d/lfleet-agent.conf"
put 0755 "$repo/packaging/kernel/postinst.d/zz-lfleet-agent" "$a/etc/kernel/postinst.d/zz-lfleet-agent"
put 0644 "$common/agent.toml" "$a/etc/lfleet/agent.toml"
put 0644 "$repo/packaging/examples/agent.toml" "$a/usr/share/doc/lfleet-agent/examples/agent.toml"
put 0755 "$repo/packaging/slurm/lfleet-health-check" "$a/usr/lib/lfleet/lfleet-health-check"
put 0644 "$repo/packaging/slurm/lfleet.nhc" "$a/usr/share/doc/lfleet-agent/examples/lfleet.nhc"
put 0644 "$repo/packaging/slurm/slurm.conf.example" "$a/usr/share/doc/lfleet-agent/examples/slurm.conf.example"
common_files "$a" lfleet-agent
cat >"$work/agent.description" <<'TEXT'
Description: node agent keeping Lustre clients installed, mounted and healthy
 lfleet-agent installs the Azure Managed Lustre client that matches each
 installed kernel, configures LNet, owns its lines in /etc/fstab, mounts, checks
 Lustre, InfiniBand and accelerated-networking health, and reports to the lfleet
 coordinator. As installed, its configuration is inert: it mounts nothing until
 it joins a coordinator or is given mounts.
TEXT
finish "$a" lfleet-agent "$(shlibs "$a/usr/bin/lfleet-agent"), systemd, mount, kmod, iproute2" "$work/agent.description"

# --- lfleet-coordinator (with the lfleet CLI)
c="$work/coordinator"
program "$c" lfleet-coordinator
program "$c" lfleet
put 0644 "$repo/systemd/lfleet-coordinator.service" "$c/lib/systemd/system/lfleet-coordinator.service"
# Completions generated from lfleet's clap definitions (`lfleet completions SHELL`; the
# tidy test keeps the committed files current).
put 0644 "$repo/packaging/completions/lfleet.bash" "$c/usr/share/bash-completion/completions/lfleet"
put 0644 "$repo/packaging/completions/_lfleet" "$c/usr/share/zsh/vendor-completions/_lfleet"
put 0644 "$repo/packaging/completions/lfleet.fish" "$c/usr/share/fish/vendor_completions.d/lfleet.fish"
# Grafana dashboards (fleet, filesystems, node) to import: docs/metrics.md.
for dashboard in "$repo"/packaging/grafana/*.json; do
  put 0644 "$dashboard" "$c/usr/share/lfleet-coordinator/grafana/${dashboard##*/}"
done
put 0644 "$repo/systemd/tmpfiles.d/lfleet-coordinator.conf" "$c/usr/lib/tmpfiles.d/lfleet-coordinator.conf"
put 0644 "$common/coordinator.toml" "$c/etc/lfleet/coordinator.toml"
put 0644 "$repo/packaging/examples/coordinator.toml" "$c/usr/share/doc/lfleet-coordinator/examples/coordinator.toml"
common_files "$c" lfleet-coordinator
cat >"$work/coordinator.description" <<'TEXT'
Description: coordinator and operators' CLI for lfleet Lustre client fleets
 lfleet-coordinator pushes the desired Lustre mount configuration to lfleet
 agents with a generation number, keeps the fleet's health view, and drains
 unhealthy nodes from Slurm without touching drains it did not make. The lfleet
 command shows fleet mount health, configuration, drains and incidents.
TEXT
finish "$c" lfleet-coordinator "$(shlibs "$c/usr/bin/lfleet-coordinator" "$c/usr/bin/lfleet"), systemd" "$work/coordinator.description"
ls "$out"/lfleet-agent_"$version"_"$arch".deb "$out"/lfleet-coordinator_"$version"_"$arch".deb
