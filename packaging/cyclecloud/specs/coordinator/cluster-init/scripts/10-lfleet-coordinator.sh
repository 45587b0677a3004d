#!/usr/bin/env bash
# CycleCloud cluster-init (spec "coordinator", the scheduler or a service node): install
# lfleet-coordinator, write its configuration from jetpack values, start it, and print the
# join token and CA the nodes need (put them in the cluster's lfleet parameters).
#   lfleet.mgs_nids, lfleet.fsname, lfleet.mount_point    the AMLFS filesystem (required)
#   lfleet.lustre_version                                 (default 2.15.7-33-g79ddf99)
#   lfleet.slurm_drains                                   true to let lfleet drain (default false)
set -euo pipefail
root="${LFLEET_ROOT:-/}"
root="${root%/}"
jet() { jetpack config "$@"; }
mgs="$(jet lfleet.mgs_nids)"
fsname="$(jet lfleet.fsname lustrefs)"
point="$(jet lfleet.mount_point /lustre)"
version="$(jet lfleet.lustre_version 2.15.7-33-g79ddf99)"
drains="$(jet lfleet.slurm_drains false)"
host="$(jet cyclecloud.instance.ipv4 127.0.0.1)"
if [ "${LFLEET_SKIP_INSTALL:-0}" != 1 ]; then
  apt-get install -y "${CYCLECLOUD_SPEC_PATH:-$(dirname "$0")/..}"/files/lfleet-coordinator_*.deb
fi
install -d -m 0755 "$root/etc/lfleet"
cat >"$root/etc/lfleet/coordinator.toml" <<TOML
[server]
listen = "0.0.0.0:7443"
server_names = ["$host", "localhost", "127.0.0.1"]

[client]
lustre_version = "$version"

[[filesystems]]
name = "amlfs"
mgs_nids = "$mgs"
fsname = "$fsname"
mount_point = "$point"
options = ["noatime", "flock"]

[slurm]
enabled = $drains
TOML
if [ "$root" = "" ] && [ -d /run/systemd/system ]; then
  systemctl enable --now lfleet-coordinator.service
  for _ in $(seq 30); do [ -s /var/lib/lfleet-coordinator/ca.pem ] && break; sleep 1; done
  echo "lfleet: coordinator at https://$host:7443"
  echo "lfleet: join token: $(cat /etc/lfleet/join-token)"
  echo "lfleet: CA: /var/lib/lfleet-coordinator/ca.pem"
fi
