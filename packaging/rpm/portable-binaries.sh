#!/usr/bin/env bash
# Builds lfleet-agent, lfleet-coordinator and lfleet linked against glibc 2.28, EL8's C
# library, with cargo-zigbuild (zig as the linker, with glibc 2.28's symbol versions): they
# run on EL8, EL9, Azure Linux 3 and every newer distribution, so one set of binaries serves
# every RPM. Prints the directory holding them; build output goes to stderr.
#   packaging/rpm/build.sh OUTDIR "$(packaging/rpm/portable-binaries.sh)"
# LFLEET_PROFILE picks the cargo profile (default release; the tests use dev). Needs
# cargo-zigbuild and zig; tests/setup.sh installs both (zig from its official PyPI
# distribution, `ziglang`, in a virtual environment at /opt/lfleet-tools/zig).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
profile="${LFLEET_PROFILE:-release}"
glibc=2.28
target=x86_64-unknown-linux-gnu

if ! command -v cargo-zigbuild >/dev/null 2>&1; then
  echo "portable-binaries.sh: cargo-zigbuild is not installed (cargo install --locked cargo-zigbuild; tests/setup.sh does it)" >&2
  exit 2
fi
# cargo-zigbuild runs zig as `python3 -m ziglang` (or `zig` on PATH).
python="${CARGO_ZIGBUILD_PYTHON_PATH:-/opt/lfleet-tools/zig/bin/python3}"
if [[ -x $python ]]; then
  export CARGO_ZIGBUILD_PYTHON_PATH="$python"
elif ! command -v zig >/dev/null 2>&1 && ! python3 -m ziglang version >/dev/null 2>&1; then
  echo "portable-binaries.sh: zig is not installed (python3 -m venv /opt/lfleet-tools/zig && /opt/lfleet-tools/zig/bin/pip install ziglang; tests/setup.sh does it)" >&2
  exit 2
fi

# Their own target directory: another glibc, another set of artifacts.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}/glibc-$glibc"
cd "$repo"
cargo zigbuild --locked --profile "$profile" --target "$target.$glibc" \
  -p lfleet-agent -p lfleet-coordinator --bins >&2
case "$profile" in
  dev | test) dir="$CARGO_TARGET_DIR/$target/debug" ;;
  *) dir="$CARGO_TARGET_DIR/$target/$profile" ;;
esac
for program in lfleet-agent lfleet-coordinator lfleet; do
  [[ -x $dir/$program ]] || { echo "portable-binaries.sh: $dir/$program was not built" >&2; exit 1; }
done
echo "$dir"
