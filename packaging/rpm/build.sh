#!/usr/bin/env bash
# Builds the lfleet-agent and lfleet-coordinator RPMs with rpmbuild from built binaries, for
# each target distribution: EL8 (.el8), EL9 (.el9) and Azure Linux 3 (.azl3).
#   packaging/rpm/build.sh OUTDIR [BINDIR]
# BINDIR defaults to target/release. LFLEET_RPM_DISTS picks the distributions (default
# "el8 el9 azl3"); LFLEET_VERSION overrides the workspace version; LFLEET_RPM_PAYLOAD the
# payload compression (default w2.xzdio, which EL8's rpm reads; tests use w1.gzdio).
# The binaries link the C library of the machine they were built on; each distribution's RPM
# is made only when they run on its C library (EL8 2.28, EL9 2.34, Azure Linux 3 2.38), and
# a distribution they cannot run on is refused before anything is written: build those
# binaries on that distribution (or against its glibc) and pass their directory as BINDIR.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../common/inputs.sh
. "$repo/packaging/common/inputs.sh"
dists="${LFLEET_RPM_DISTS:-el8 el9 azl3}"
command -v rpmbuild >/dev/null || { echo "build.sh: rpmbuild is not installed (Debian: apt-get install rpm)" >&2; exit 2; }

glibc_of() { # dist -> the C library version it ships
  case "$1" in
    el8) echo 2.28 ;;
    el9) echo 2.34 ;;
    azl3) echo 2.38 ;;
    *) echo "build.sh: unknown distribution \"$1\" (use el8, el9, azl3)" >&2; return 2 ;;
  esac
}
# The newest GLIBC_x.y symbol version any binary needs.
needed="$(for program in lfleet-agent lfleet-coordinator lfleet; do
  objdump -T "$bin/$program" | grep -o 'GLIBC_[0-9.]*'
done | sed 's/GLIBC_//' | sort -V | tail -1)"
for dist in $dists; do
  have="$(glibc_of "$dist")"
  if [[ $(printf '%s\n%s\n' "$needed" "$have" | sort -V | tail -1) != "$have" ]]; then
    echo "build.sh: the binaries in $bin need glibc $needed; $dist has $have: build them on $dist (or against its glibc) and pass that directory as BINDIR, or leave $dist out with LFLEET_RPM_DISTS" >&2
    exit 2
  fi
done

mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/stage"
put() { install -D -m "$1" "$2" "$3"; }
man() {
  install -d -m 0755 "$stage/usr/share/man/man1"
  gzip -9n <"$repo/packaging/man/$1.1" >"$stage/usr/share/man/man1/$1.1.gz"
}
for program in lfleet-agent lfleet-coordinator lfleet; do
  put 0755 "$bin/$program" "$stage/usr/bin/$program"
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/$program"
  man "$program"
done
for package in lfleet-agent lfleet-coordinator; do
  put 0644 "$repo/packaging/common/copyright" "$stage/usr/share/licenses/$package/copyright"
done
put 0644 "$repo/systemd/lfleet-agent.service" "$stage/usr/lib/systemd/system/lfleet-agent.service"
put 0644 "$repo/systemd/lfleet-lnet.service" "$stage/usr/lib/systemd/system/lfleet-lnet.service"
put 0644 "$repo/systemd/lfleet-coordinator.service" "$stage/usr/lib/systemd/system/lfleet-coordinator.service"
put 0644 "$repo/systemd/tmpfiles.d/lfleet-agent.conf" "$stage/usr/lib/tmpfiles.d/lfleet-agent.conf"
put 0644 "$repo/systemd/tmpfiles.d/lfleet-coordinator.conf" "$stage/usr/lib/tmpfiles.d/lfleet-coordinator.conf"
put 0755 "$repo/packaging/kernel/install.d/90-lfleet-agent.install" "$stage/usr/lib/kernel/install.d/90-lfleet-agent.install"
put 0644 "$repo/packaging/common/agent.toml" "$stage/etc/lfleet/agent.toml"
put 0644 "$repo/packaging/common/coordinator.toml" "$stage/etc/lfleet/coordinator.toml"
put 0644 "$repo/README.md" "$stage/usr/share/doc/lfleet-agent/README.md"
put 0644 "$repo/packaging/examples/agent.toml" "$stage/usr/share/doc/lfleet-agent/examples/agent.toml"
put 0644 "$repo/coordinator/README.md" "$stage/usr/share/doc/lfleet-coordinator/README.md"
put 0644 "$repo/packaging/examples/coordinator.toml" "$stage/usr/share/doc/lfleet-coordinator/examples/coordinator.toml"
put 0755 "$repo/packaging/slurm/lfleet-health-check" "$stage/usr/lib/lfleet/lfleet-health-check"
put 0644 "$repo/packaging/slurm/lfleet.nhc" "$stage/usr/share/doc/lfleet-agent/examples/lfleet.nhc"
put 0644 "$repo/packaging/slurm/slurm.conf.example" "$stage/usr/share/doc/lfleet-agent/examples/slurm.conf.example"
put 0644 "$repo/packaging/completions/lfleet.bash" "$stage/usr/share/bash-completion/completions/lfleet"
put 0644 "$repo/packaging/completions/_lfleet" "$stage/usr/share/zsh/site-functions/_lfleet"
put 0644 "$repo/packaging/completions/lfleet.fish" "$stage/usr/share/fish/vendor_completions.d/lfleet.fish"
for dashboard in "$repo"/packaging/grafana/*.json; do
  put 0644 "$dashboard" "$stage/usr/share/lfleet-coordinator/grafana/${dashboard##*/}"
done
install -d -m 0700 "$stage/var/lib/lfleet"

for dist in $dists; do
  rpmbuild -bb --quiet \
    --define "_topdir $work/rpmbuild" \
    --define "_rpmdir $out" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "dist .$dist" \
    --define "_binary_payload ${LFLEET_RPM_PAYLOAD:-w2.xzdio}" \
    --define "lfleet_version $version" \
    --define "lfleet_stage $stage" \
    --define "lfleet_repo $repo" \
    "$here/lfleet.spec"
done
ls "$out"/lfleet-*.rpm
