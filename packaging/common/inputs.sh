# Sourced by packaging/deb/build.sh and packaging/rpm/build.sh: their arguments and checks.
# Sets out (OUTDIR), bin (BINDIR, default target/release) and version (LFLEET_VERSION or
# the workspace version); refuses a version a package format cannot hold and missing
# binaries, before anything is written.
out="${1:?usage: build.sh OUTDIR [BINDIR]}"
bin="${2:-$repo/target/release}"
version="${LFLEET_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)}"
if ! [[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]]; then
  echo "build.sh: version \"$version\" cannot be a package version (digits first; then letters, digits, . + ~)" >&2
  exit 2
fi
for program in lfleet-agent lfleet-coordinator lfleet; do
  if [[ ! -x $bin/$program ]]; then
    echo "build.sh: $bin/$program is missing: build the workspace first (cargo build --release)" >&2
    exit 2
  fi
done
