#!/usr/bin/env bash
# The test command: set-up, format check, clippy with warnings denied, a build with no
# protoc anywhere on PATH, and every test (the ones with real daemons included).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
if ! command -v cargo >/dev/null 2>&1; then . "$HOME/.cargo/env"; fi

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo build --workspace with no protoc on PATH"
# Generated protobuf code is committed (proto/api/src/generated); the build must not need
# protoc. Run it with a PATH from which every directory holding a protoc is removed.
no_protoc_path=""
IFS=: read -r -a path_dirs <<<"$PATH"
for dir in "${path_dirs[@]}"; do
  [[ -n $dir && ! -x $dir/protoc ]] && no_protoc_path+="${no_protoc_path:+:}$dir"
done
env PATH="$no_protoc_path" PROTOC=/nonexistent/protoc cargo build --workspace --all-targets --locked

echo "== binaries linked against glibc 2.28 for the RPM test (EL8's C library)"
# Built here, before the tests run in parallel; the test asks again and finds them fresh.
LFLEET_PROFILE=dev bash packaging/rpm/portable-binaries.sh >/dev/null

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doctests; run them first so nextest's summary closes the log.
  cargo test --workspace --doc --locked
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
