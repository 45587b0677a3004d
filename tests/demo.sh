#!/usr/bin/env bash
# The main job, for now: a small simulated fleet on the embedded defaults. It builds
# lfleet-sim, makes three client nodes of different distributions and Lustre versions,
# installs, loads and mounts the Lustre client on each through the node's own commands,
# injects faults, runs load, and cleans up. Every step says what to look at.
#
# Coming next (see README): the agent reconciling these nodes on its own, the coordinator,
# Slurm drains and the operators' CLI. This demo grows with them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
if ! command -v cargo >/dev/null 2>&1; then . "$HOME/.cargo/env"; fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
look() { printf '   -> %s\n' "$*"; }

step "Building lfleet-sim (release)"
cargo build --release --locked -p lfleet-sim
SIM="$PWD/target/release/lfleet-sim"
FLEET=$(mktemp -d /tmp/lfleet-demo.XXXXXX)
trap 'rm -rf "$FLEET"' EXIT

# name distro kernel lustre-series amlfs-version extra-flags
NODES=(
  "hpc-pg0-1 ubuntu-22.04 5.15.0-1075-azure 2.15 2.15.7-33-g79ddf99 --ib 2 --accelnet"
  "hpc-pg0-2 alma-9 5.14.0-427.13.1.el9_4.x86_64 2.12 2.12.9-4-g0c2d4e6 --accelnet"
  "hpc-pg0-3 ubuntu-24.04 6.8.0-1026-azure 2.17 2.17.0-19-gbb5310f --ib 1"
)

step "Creating ${#NODES[@]} simulated nodes under $FLEET"
for spec in "${NODES[@]}"; do
  read -r name distro kernel series _ extra <<<"$spec"
  # shellcheck disable=SC2086
  "$SIM" node create "$FLEET/$name" --distro "$distro" --kernel "$kernel" --lustre "$series" --hostname "$name" $extra
done
look "each node is a root directory with etc/, proc/, sys/, boot/, lib/modules/ and bin/ shims"

run_on() { # node command args...
  local node=$1; shift
  PATH="$FLEET/$node/bin:$PATH" "$@"
}

step "Installing the kernel-matched AMLFS client on each node with its own package manager"
for spec in "${NODES[@]}"; do
  read -r name distro kernel _ version _ <<<"$spec"
  case $distro in
    ubuntu-*) run_on "$name" apt-get install -y "amlfs-lustre-client-$version=$kernel" | tail -1 ;;
    *)
      k=${kernel%.x86_64}; k=${k//-/.}; k=${k//_/.}
      run_on "$name" dnf install -y "amlfs-lustre-client-${version//-/_}-$k-1" | tail -1 ;;
  esac
done
look "the module files appeared where each package puts them:"
find "$FLEET" -name lustre.ko | sed "s|$FLEET/|     |"

step "Loading Lustre and mounting 10.0.1.4@tcp:/lustrefs at /lustre"
for spec in "${NODES[@]}"; do
  read -r name _ <<<"$spec"
  run_on "$name" modprobe lustre
  mkdir -p "$FLEET/$name/lustre"
  run_on "$name" mount -t lustre -o noatime,flock 10.0.1.4@tcp:/lustrefs /lustre
  printf '   %-10s %s\n' "$name" "$(tail -1 "$FLEET/$name/proc/self/mountinfo")"
done
look "each Lustre version keeps its client statistics in a different place:"
for spec in "${NODES[@]}"; do
  read -r name _ _ series _ <<<"$spec"
  printf '   %-10s Lustre %-5s %s\n' "$name" "$series" "$(cd "$FLEET/$name" && find proc sys -path '*llite*' -name stats)"
done

step "Running 10 s of load (500 MB/s write, 100 MB/s read) on hpc-pg0-1"
"$SIM" load "$FLEET/hpc-pg0-1" --write-mbps 500 --read-mbps 100 --seconds 10 --instant
look "llite stats now (snapshot_time moved 10 s; write_bytes sum grew 5,000,000,000):"
sed 's/^/     /' "$FLEET"/hpc-pg0-1/sys/kernel/debug/lustre/llite/*/stats | head -8

step "Injecting faults"
"$SIM" fault "$FLEET/hpc-pg0-1" import --target OST0001 --state EVICTED
look "the import file and the kernel log say so:"
grep '    state:' "$FLEET"/hpc-pg0-1/proc/fs/lustre/osc/lustrefs-OST0001-osc-*/import | sed 's/^.*import:/     /'
sed 's/^/     /' "$FLEET/hpc-pg0-1/dev/kmsg"
"$SIM" fault "$FLEET/hpc-pg0-3" ib-port-down --hca mlx5_0
look "hpc-pg0-3 mlx5_0 port 1: $(cat "$FLEET/hpc-pg0-3/sys/class/infiniband/mlx5_0/ports/1/state") / $(cat "$FLEET/hpc-pg0-3/sys/class/infiniband/mlx5_0/ports/1/phys_state")"
"$SIM" fault "$FLEET/hpc-pg0-2" kernel-upgrade --kernel 5.14.0-503.11.1.el9_5.x86_64
"$SIM" fault "$FLEET/hpc-pg0-2" repo-missing --kernel 5.14.0-503.11.1.el9_5.x86_64
look "a kernel upgrade whose client is not published yet: dnf says what the real one says"
run_on hpc-pg0-2 dnf install -y amlfs-lustre-client-2.12.9_4_g0c2d4e6-5.14.0.503.11.1.el9.5-1 2>&1 | sed 's/^/     /' || true

step "Healing every fault"
for spec in "${NODES[@]}"; do
  read -r name _ <<<"$spec"
  "$SIM" heal "$FLEET/$name"
done
look "hpc-pg0-1 OST0001 import: $(grep '    state:' "$FLEET"/hpc-pg0-1/proc/fs/lustre/osc/lustrefs-OST0001-osc-*/import | awk '{print $2}')"

step "Unmounting and cleaning up"
for spec in "${NODES[@]}"; do
  read -r name _ <<<"$spec"
  run_on "$name" umount /lustre
done
look "done; the agent, coordinator and Slurm drains join this demo as they land"
