#!/usr/bin/env bash
# Installs lfleet-agent into a VM image so that the first boot of every VM made from it
# enrolls with the coordinator and mounts. Run it as the last step of an image build (Packer,
# Azure Image Builder, or by hand before generalizing the VM):
#   packaging/image/bake.sh lfleet-agent_<version>_amd64.deb [--lustre-version V]
# IMAGE_ROOT=/path bakes into a mounted image root instead of this machine.
#
# No per-node identity goes into the image: the node's key and certificate are made at first
# boot (enrollment), and anything a previous run left (certificate, ledger, check memory,
# join token) is removed. What each VM needs (coordinator URL, CA, join token, node name)
# comes at boot from cluster-init (packaging/cyclecloud) or cloud-init.
set -euo pipefail
deb="${1:?usage: bake.sh lfleet-agent.deb [--lustre-version V]}"
shift
lustre_version=""
while [ $# -gt 0 ]; do
  case "$1" in
    --lustre-version) lustre_version="$2"; shift 2 ;;
    *) echo "bake.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
root="${IMAGE_ROOT:-/}"
root="${root%/}"

if [ -z "$root" ]; then
  apt-get install -y "$(realpath "$deb")"
else
  # Into an image root: dpkg there, maintainer scripts honouring DPKG_ROOT.
  # (DPKG_FORCE=depends when the image root's dpkg database has no systemd package.)
  dpkg --root="$root" --force-script-chrootless --log="$root/var/log/dpkg.log" -i "$deb"
fi

# Forget any identity and state a build VM may have picked up.
rm -rf "$root/var/lib/lfleet/tls" "$root/var/lib/lfleet/desired.json" \
       "$root/var/lib/lfleet/checks.json" "$root/etc/lfleet/join-token"
install -d -m 0700 "$root/var/lib/lfleet"

# Optionally install the Lustre client for the image's kernels now, so first boot mounts
# without a package download (the agent still checks, and installs for newer kernels).
if [ -n "$lustre_version" ]; then
  tmp="$(mktemp)"
  printf 'generation = 1\n[client]\nlustre_version = "%s"\n' "$lustre_version" >"$tmp"
  for modules in "$root"/lib/modules/*; do
    [ -d "$modules" ] || continue
    lfleet-agent kernel-installed --wait "$(basename "$modules")" --root "${root:-/}" --config "$tmp" || true
  done
  rm -f "$tmp" "$root/var/lib/lfleet/desired.json"
fi
echo "baked: lfleet-agent enabled; no node identity in the image"
