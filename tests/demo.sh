#!/usr/bin/env bash
# The main job: a small simulated fleet on the embedded defaults, run by the real binaries.
# It builds lfleet-sim, lfleet-agent, lfleet-coordinator and lfleet; starts a coordinator
# (its own CA, a scratch data directory) and eight agents on simulated nodes; lets them
# enroll and converge; shows the fleet with the operators' CLI; pushes a new filesystem;
# runs load and reads the agent's telemetry; injects faults (an eviction, an IB port down, a
# kernel upgrade whose client is not installed yet) and shows them arrive; heals; stops
# every process it started, by PID, and removes its files.
#
#
# Slurm is real (munged, slurmctld, one slurmd -N per node): lfleet drains the evicted node,
# leaves an operator's drain alone, and undrains after recovery. Every step says what to
# look at.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
if ! command -v cargo >/dev/null 2>&1; then . "$HOME/.cargo/env"; fi

export LFLEET_LOG=warn

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
look() { printf '   -> %s\n' "$*"; }
indent() { sed 's/^/     /'; }

step "Building lfleet-sim, lfleet-agent, lfleet-coordinator and lfleet (release)"
cargo build --release --locked -p lfleet-sim -p lfleet-agent -p lfleet-coordinator
BIN="$PWD/target/release"
FLEET=$(mktemp -d /tmp/lfleet-demo.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$FLEET"
}
trap cleanup EXIT

lfleet() { "$BIN/lfleet" --socket "$FLEET/admin.sock" "$@"; }

# wait_for DESCRIPTION SECONDS COMMAND...: polls every 0.2 s, at most SECONDS.
wait_for() {
  local what=$1 limit=$2; shift 2
  for _ in $(seq $((limit * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "   !! not within ${limit}s: $what" >&2
  return 1
}

NAMES=(hpc-pg0-1 hpc-pg0-2 hpc-pg0-3 hpc-pg0-4 hpc-pg0-5 hpc-pg0-6 hpc-pg0-7 hpc-pg0-8)
N=${#NAMES[@]}
step "Starting Slurm: munged (scratch key), slurmctld and one slurmd -N per node, on loopback"
mkdir -p "$FLEET/slurm/state" "$FLEET/slurm/spool"
# A port nothing listens on (a connection to it is refused).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}
mungekey --create --keyfile="$FLEET/slurm/munge.key" >/dev/null
munged --foreground --force --socket="$FLEET/slurm/munge.sock" --key-file="$FLEET/slurm/munge.key" \
  --pid-file="$FLEET/slurm/munged.pid" --log-file="$FLEET/slurm/munged.log" --seed-file="$FLEET/slurm/munge.seed" 2>/dev/null &
PIDS+=($!)
wait_for "munged" 10 test -S "$FLEET/slurm/munge.sock"
export SLURM_CONF="$FLEET/slurm/slurm.conf"
{
  echo "ClusterName=demo"
  echo "SlurmctldHost=localhost(127.0.0.1)"
  echo "SlurmctldPort=$(free_port)"
  echo "SlurmUser=root"
  echo "SlurmdUser=root"
  echo "AuthType=auth/munge"
  echo "AuthInfo=socket=$FLEET/slurm/munge.sock"
  echo "CredType=cred/munge"
  echo "StateSaveLocation=$FLEET/slurm/state"
  echo "SlurmdSpoolDir=$FLEET/slurm/spool/%n"
  echo "SlurmctldPidFile=$FLEET/slurm/slurmctld.pid"
  echo "SlurmdPidFile=$FLEET/slurm/slurmd-%n.pid"
  echo "SlurmctldLogFile=$FLEET/slurm/slurmctld.log"
  echo "SlurmdLogFile=$FLEET/slurm/slurmd-%n.log"
  echo "ProctrackType=proctrack/linuxproc"
  echo "TaskPlugin=task/none"
  echo "JobAcctGatherType=jobacct_gather/none"
  echo "AccountingStorageType=accounting_storage/none"
  echo "SelectType=select/linear"
  echo "ReturnToService=2"
  echo "MpiDefault=none"
  for name in "${NAMES[@]}"; do
    echo "NodeName=$name NodeHostname=localhost NodeAddr=127.0.0.1 Port=$(free_port) CPUs=1 State=UNKNOWN"
  done
  echo "PartitionName=hpc Nodes=ALL Default=YES State=UP"
} >"$SLURM_CONF"
slurmctld -D 2>/dev/null &
PIDS+=($!)
wait_for "slurmctld" 20 scontrol ping
for name in "${NAMES[@]}"; do
  slurmd -D -N "$name" 2>/dev/null &
  PIDS+=($!)
done
all_idle() { [ "$(sinfo -h -N -o '%T' | grep -c '^idle$')" = "${#NAMES[@]}" ]; }
wait_for "every Slurm node idle" 30 all_idle
sinfo -N | indent

step "Starting the coordinator (packaging/examples/coordinator.toml, scratch paths, drains on)"
sed -e 's|^listen = .*|listen = "127.0.0.1:0"|' \
    -e "s|^data_dir = .*|data_dir = \"$FLEET/coordinator\"|" \
    -e "s|^join_token_file = .*|join_token_file = \"$FLEET/join-token\"|" \
    -e "s|^admin_socket = .*|admin_socket = \"$FLEET/admin.sock\"|" \
    -e 's|^enabled = false|enabled = true|' \
    -e "s|^# slurm_conf = .*|slurm_conf = \"$SLURM_CONF\"|" \
    -e 's|^grace_seconds = .*|grace_seconds = 5|' \
    -e 's|^undrain_after_seconds = .*|undrain_after_seconds = 5|' \
    -e 's|^max_drained_share = .*|max_drained_share = 0.7|' \
    -e 's|"lustre.lbug"\] }|"lustre.lbug", "ib.ports"] }|' \
    -e 's|^interval_seconds = .*|interval_seconds = 1.0|' \
    packaging/examples/coordinator.toml >"$FLEET/coordinator.toml"
look "policy for the demo: grace 5 s, undrain after 5 s of health, ib.ports required too,"
look "at most 70% of the fleet drained by lfleet"
"$BIN/lfleet-coordinator" --config "$FLEET/coordinator.toml" --metrics-listen 127.0.0.1:0 \
  >"$FLEET/coordinator.out" 2>"$FLEET/coordinator.log" &
PIDS+=($!)
wait_for "the coordinator listening" 20 grep -q '^metrics on' "$FLEET/coordinator.out"
ADDRESS=$(sed -n 's/^listening on //p' "$FLEET/coordinator.out")
METRICS=$(sed -n 's/^metrics on //p' "$FLEET/coordinator.out")
look "gRPC with mTLS on $ADDRESS, /metrics on $METRICS, its CA in $FLEET/coordinator/ca.pem"
look "a join token was made on first start: $FLEET/join-token (mode $(stat -c %a "$FLEET/join-token"))"

# name  extra lfleet-sim flags
NODES=("hpc-pg0-1 --ib 1 --accelnet" "hpc-pg0-2 --accelnet" "hpc-pg0-3 --ib 1")
for name in "${NAMES[@]:3}"; do NODES+=("$name --ib 1 --accelnet"); done
step "Creating $N simulated Ubuntu 22.04 nodes (kernel 5.15.0-1075-azure, no Lustre client yet)"
for spec in "${NODES[@]}"; do
  read -r name extra <<<"$spec"
  # shellcheck disable=SC2086
  "$BIN/lfleet-sim" node create "$FLEET/$name" --distro ubuntu-22.04 --kernel 5.15.0-1075-azure \
    --lustre 2.15 --hostname "$name" $extra | indent
done

step "Starting lfleet-agent run on each node, joined to the coordinator"
for spec in "${NODES[@]}"; do
  read -r name extra <<<"$spec"
  # The CA and join token where cluster-init puts them on a node (paths are node paths).
  install -d "$FLEET/$name/etc/lfleet"
  cp "$FLEET/coordinator/ca.pem" "$FLEET/$name/etc/lfleet/ca.pem"
  install -m 0600 "$FLEET/join-token" "$FLEET/$name/etc/lfleet/join-token"
  cat >"$FLEET/$name.toml" <<TOML
generation = 1
role = "compute"
[client]
lustre_version = "2.15.7-33-g79ddf99"
[coordinator]
url = "https://$ADDRESS"
ca_file = "/etc/lfleet/ca.pem"
join_token_file = "/etc/lfleet/join-token"
node_name = "$name"
TOML
  # Nodes with an HCA list it: inventory, not discovery (a missing HCA is a failure).
  if [[ "$extra" == *--ib* ]]; then
    printf '[health]\nib_ports = [{ hca = "mlx5_0", port = 1, rate_gbps = 25 }]\n' >>"$FLEET/$name.toml"
  fi
  PATH="$FLEET/$name/bin:$PATH" "$BIN/lfleet-agent" run --root "$FLEET/$name" --config "$FLEET/$name.toml" \
    --check-interval 1s --collect-interval 1s 2>"$FLEET/$name.log" &
  PIDS+=($!)
done
look "each agent enrolls (join token + CSR), opens its session, gets its desired config,"
look "installs the client for its kernel, brings LNet up, writes its fstab lines and mounts"
healthy() { [ "$(lfleet nodes --json | grep -c '"health": "healthy"')" = "$1" ]; }
wait_for "$N healthy nodes" 90 healthy "$N"
lfleet nodes | indent
lfleet fs | indent

step "lfleet config diff / apply: a second filesystem for every node"
cp "$FLEET/coordinator.toml" "$FLEET/new.toml"
cat >>"$FLEET/new.toml" <<'TOML'

[[filesystems]]
name = "scratch"
mgs_nids = "10.0.1.5@tcp"
fsname = "scratch"
mount_point = "/scratch"
TOML
lfleet config diff "$FLEET/new.toml" | tail -n 8 | indent
lfleet config apply "$FLEET/new.toml" | indent
at_gen2() { [ "$(lfleet nodes --json | grep -c '"mounted": true')" = $((2 * N)) ] && healthy "$N"; }
wait_for "generation 2 on every node" 20 at_gen2
lfleet nodes | indent
look "a bad file is refused whole, with line and field, and nothing changes:"
sed 's/10.0.1.5@tcp/10.0.1.5@gni/; s|/scratch"|/etc/scratch"|' "$FLEET/new.toml" >"$FLEET/bad.toml"
lfleet config apply "$FLEET/bad.toml" 2>&1 | indent || true

step "Load: 500 MB/s of writes on hpc-pg0-1 for 4 s; the agent's telemetry (rates from the kernel's snapshot_time)"
"$BIN/lfleet-sim" load "$FLEET/hpc-pg0-1" --write-mbps 500 --seconds 4 --mount /lustre >/dev/null &
LOAD=$!
PATH="$FLEET/hpc-pg0-1/bin:$PATH" "$BIN/lfleet-agent" collect --root "$FLEET/hpc-pg0-1" --count 4 --interval 1s \
  | grep -E '^ *[0-9]+ llite +/lustre ' | indent
wait "$LOAD"
lfleet fs | indent

step "Faults: an eviction on hpc-pg0-2, an IB port down on hpc-pg0-3"
"$BIN/lfleet-sim" fault "$FLEET/hpc-pg0-2" import --target OST0001 --state EVICTED | indent
"$BIN/lfleet-sim" fault "$FLEET/hpc-pg0-3" ib-port-down --hca mlx5_0 | indent
two_unhealthy() { [ "$(lfleet nodes --unhealthy --json | grep -c '"health": "unhealthy"')" = 2 ]; }
wait_for "two unhealthy nodes" 10 two_unhealthy
lfleet nodes --unhealthy | indent
look "an operator drains healthy hpc-pg0-1 by hand (lfleet must never touch that):"
scontrol update NodeName=hpc-pg0-1 State=DRAIN Reason="disk swap"
drained() { sinfo -h -N -n "$1" -o '%T' | grep -q drain; }
wait_for "hpc-pg0-2 drained by lfleet" 20 drained hpc-pg0-2
wait_for "hpc-pg0-3 drained by lfleet" 20 drained hpc-pg0-3
look "Slurm: hpc-pg0-2 and hpc-pg0-3 drained by lfleet after the 5 s grace, each with its reason;"
look "hpc-pg0-1 keeps the operator's drain:"
sinfo -N -o '%N %T %E' | indent
lfleet drains | indent
look "the eviction arrived as an event (the kernel's text from /dev/kmsg):"
lfleet events --minutes 5 | grep -E 'evicted|conditions' | tail -n 4 | indent

step "A kernel upgrade on hpc-pg0-1 without its Lustre client: reported before any reboot"
"$BIN/lfleet-sim" fault "$FLEET/hpc-pg0-1" kernel-upgrade --kernel 5.15.0-1079-azure | indent
reboot_unsafe() { lfleet node hpc-pg0-1 | grep -q reboot-unsafe; }
wait_for "reboot-unsafe on hpc-pg0-1" 10 reboot_unsafe
lfleet node hpc-pg0-1 | grep -E 'reboot-unsafe' | indent
look "the kernel hook (postinst.d / kernel-install) runs lfleet-agent kernel-installed:"
PATH="$FLEET/hpc-pg0-1/bin:$PATH" "$BIN/lfleet-agent" kernel-installed 5.15.0-1079-azure \
  --root "$FLEET/hpc-pg0-1" --config "$FLEET/hpc-pg0-1.toml" | indent || true

step "Healing every fault"
for spec in "${NODES[@]}"; do
  read -r name _ <<<"$spec"
  "$BIN/lfleet-sim" heal "$FLEET/$name" | indent
done
wait_for "$N healthy nodes" 30 healthy "$N"
lfleet nodes | indent
undrained() { sinfo -h -N -n "$1" -o '%T' | grep -qx idle; }
wait_for "hpc-pg0-2 undrained" 30 undrained hpc-pg0-2
wait_for "hpc-pg0-3 undrained" 30 undrained hpc-pg0-3
look "lfleet undrained hpc-pg0-2 and hpc-pg0-3 after 5 s of health; hpc-pg0-1 keeps the operator's drain:"
sinfo -N -o '%N %T %E' | indent
lfleet drains | indent
step "A filesystem-wide outage: OST0002 of /lustre disconnects on every node"
for name in "${NAMES[@]}"; do
  "$BIN/lfleet-sim" fault "$FLEET/$name" import --target OST0002 --state DISCONN | indent
done
# Open incidents as JSON: the table's header says OPENED whether or not one is open.
incident_open() { lfleet incidents --open --json | grep -q '"opened_unix_ms"'; }
wait_for "an open incident" 20 incident_open
lfleet incidents --open | indent
sleep 7
look "7 s later, past the grace: one incident and no new drain (only the operator's):"
sinfo -N -o '%N %T %E' | indent
for name in "${NAMES[@]}"; do
  "$BIN/lfleet-sim" heal "$FLEET/$name" >/dev/null
done
incident_closed() { ! lfleet incidents --open --json | grep -q '"opened_unix_ms"'; }
wait_for "the incident closed" 20 incident_closed
look "recovered: the incident closed on its own"
lfleet incidents | indent

look "the coordinator's /metrics:"
scrape() {
  exec 3<>"/dev/tcp/${METRICS%:*}/${METRICS##*:}"
  printf 'GET /metrics HTTP/1.0\r\nHost: demo\r\n\r\n' >&3
  cat <&3
  exec 3<&-
}
scrape | grep -E '^lfleet_(nodes|config_generation|filesystem_clients|drains_active|incidents_open)' | indent

step "Stopping the agents, the coordinator and Slurm (by PID) and removing $FLEET"
