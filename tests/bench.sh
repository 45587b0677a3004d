#!/usr/bin/env bash
# The benchmark command (not part of the tests): installs what it needs (the test set-up and
# Debian's prometheus-node-exporter for the comparison), builds release binaries, and runs
# lfleet-bench, which prints each section as a table and writes bench.json.
#   bash tests/bench.sh [--quick] [--agents 1000,10000] [--sections abcdfg]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
if ! command -v cargo >/dev/null 2>&1; then . "$HOME/.cargo/env"; fi
if [[ ! -x /usr/bin/prometheus-node-exporter ]]; then
  # Keep the packaged service stopped: the benchmark runs its own exporter on a scratch tree.
  policy_rc=/usr/sbin/policy-rc.d
  made=0
  if [[ ! -e $policy_rc ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy_rc"; chmod 755 "$policy_rc"; made=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-node-exporter >/dev/null
  [[ $made == 1 ]] && rm -f "$policy_rc"
fi
cargo build --release --locked --workspace --bins
exec target/release/lfleet-bench --json bench.json "$@"
