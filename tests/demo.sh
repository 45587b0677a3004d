#!/usr/bin/env bash
# The main job, for now: a small simulated fleet on the embedded defaults. It builds
# lfleet-sim and lfleet-agent, makes three client nodes of different distributions and
# Lustre versions, lets the agent converge each one (client, LNet, fstab, mount), shows a
# second pass changing nothing, runs load, injects faults (an eviction, an IB port down, an
# unpublished kernel upgrade the agent reports before any reboot), heals and cleans up.
# Every step says what to look at.
#
# Coming next (see README): the agent reconciling these nodes on its own, the coordinator,
# Slurm drains and the operators' CLI. This demo grows with them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
if ! command -v cargo >/dev/null 2>&1; then . "$HOME/.cargo/env"; fi

# The agent's own warnings go to the journal on a node; here they would only repeat the report.
export LFLEET_LOG=error

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
look() { printf '   -> %s\n' "$*"; }

step "Building lfleet-sim and lfleet-agent (release)"
cargo build --release --locked -p lfleet-sim -p lfleet-agent
SIM="$PWD/target/release/lfleet-sim"
AGENT="$PWD/target/release/lfleet-agent"
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

config_for() { # node amlfs-version -> path of its agent.toml (from the commented example)
  sed "s/2.15.7-33-g79ddf99/$2/" packaging/examples/agent.toml >"$FLEET/$1.toml"
  echo "$FLEET/$1.toml"
}

step "lfleet-agent plan on hpc-pg0-1: what it would do to a fresh node (changes nothing)"
read -r _ _ _ _ version _ <<<"${NODES[0]}"
run_on hpc-pg0-1 "$AGENT" plan --root "$FLEET/hpc-pg0-1" --config "$(config_for hpc-pg0-1 "$version")" | sed 's/^/     /'

step "lfleet-agent apply on every node: client for the kernel, module, LNet, fstab, mount, slurmd drop-in"
for spec in "${NODES[@]}"; do
  read -r name _ _ _ version _ <<<"$spec"
  printf '   %s\n' "$name"
  run_on "$name" "$AGENT" apply --root "$FLEET/$name" --config "$(config_for "$name" "$version")" | sed 's/^/     /'
done
look "the agent's fstab block on hpc-pg0-1 (every other line of fstab is untouched):"
sed -n '/BEGIN lfleet-agent/,/END lfleet-agent/p' "$FLEET/hpc-pg0-1/etc/fstab" | sed 's/^/     /'
look "each Lustre version keeps its client statistics in a different place:"
for spec in "${NODES[@]}"; do
  read -r name _ _ series _ <<<"$spec"
  printf '   %-10s Lustre %-5s %s\n' "$name" "$series" "$(cd "$FLEET/$name" && find proc sys -path '*llite*' -name stats)"
done

step "lfleet-agent apply again: a converged node needs nothing"
run_on hpc-pg0-1 "$AGENT" apply --root "$FLEET/hpc-pg0-1" --config "$FLEET/hpc-pg0-1.toml" | sed 's/^/     /'

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
"$SIM" fault "$FLEET/hpc-pg0-1" kernel-upgrade --kernel 5.15.0-1079-azure
"$SIM" fault "$FLEET/hpc-pg0-1" repo-missing --kernel 5.15.0-1079-azure
look "a kernel upgrade whose client is not published yet: the agent says so before any reboot"
run_on hpc-pg0-1 "$AGENT" apply --root "$FLEET/hpc-pg0-1" --config "$FLEET/hpc-pg0-1.toml" | sed 's/^/     /' || true

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
