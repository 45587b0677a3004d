#!/usr/bin/env bash
# Installs what lfleet's build, tests and demo need on a fresh Debian 12 machine, as root.
# Idempotent: a second run installs nothing new. Used by tests/ci.sh and tests/demo.sh.
set -euo pipefail

# Debian packages: real components the tests run (Slurm and munge for drains, bindfs and
# FUSE for a truly hung mount, systemd for systemd-fstab-generator and systemd-analyze,
# dpkg-dev and apt-utils for a local apt repository, dnf, createrepo-c and rpm (rpmbuild)
# for a local dnf repository, iproute2 for network namespaces, mmdebstrap and
# systemd-container to build and boot real Debian nodes, lintian to judge the .debs,
# prometheus for promtool and a real Prometheus server scraping lfleet, chromium and
# chromium-driver to test the dashboard in a real browser, with libnss3-tools (certutil,
# pk12util) to give that browser an admin certificate), python3-venv for zig's own
# environment).
PACKAGES=(
  build-essential pkg-config ca-certificates git
  iproute2 procps psmisc
  systemd
  fuse3 bindfs
  munge slurmctld slurmd slurm-client
  dpkg-dev apt-utils
  dnf createrepo-c rpm
  mmdebstrap systemd-container lintian openssl
  prometheus
  chromium chromium-driver libnss3-tools
  python3-venv
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$package")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Packages such as slurmctld and munge would start their services on install; the tests
  # start their own daemons with scratch configs, so keep the packaged ones stopped.
  policy_rc=/usr/sbin/policy-rc.d
  made_policy_rc=0
  if [[ ! -e $policy_rc ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
    chmod 755 "$policy_rc"
    made_policy_rc=1
  fi
  trap '[[ $made_policy_rc == 1 ]] && rm -f "$policy_rc"' EXIT
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: Debian packages present"
fi

# The Rust toolchain comes with the machine (rustup); make sure it is on PATH.
if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; lfleet needs the machine's Rust toolchain" >&2
  exit 1
fi

# cargo-zigbuild and zig link the RPMs' binaries against glibc 2.28 (EL8's C library;
# packaging/rpm/portable-binaries.sh). zig comes from its official PyPI distribution
# (`ziglang`), in a virtual environment of its own.
zig_env=/opt/lfleet-tools/zig
if ! "$zig_env/bin/python3" -m ziglang version >/dev/null 2>&1; then
  echo "setup: installing zig (PyPI ziglang) in $zig_env"
  python3 -m venv "$zig_env"
  "$zig_env/bin/pip" install -q --disable-pip-version-check ziglang==0.15.1
fi
if ! command -v cargo-zigbuild >/dev/null 2>&1; then
  echo "setup: installing cargo-zigbuild"
  cargo install --locked --quiet cargo-zigbuild@0.24.1
fi
