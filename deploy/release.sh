#!/usr/bin/env bash
# A release binary: `cargo build --release --locked` (the dependency versions of Cargo.lock,
# no others), copied to dist/ with its SHA-256, and the container image built from it.
#
#   deploy/release.sh            # binary + checksums
#   deploy/release.sh --image    # and the image (deploy/container/build.sh)
#
# Set AGENTGATEWAY_COMMIT when building from a tarball without .git (--version names it).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p agentgateway
bin="$target_dir/release/agentgateway"
version="$("$bin" --version)"                       # agentgateway 0.1.0 (commit abcdef012345)
semver="$(echo "$version" | awk '{ print $2 }')"
triple="$(rustc -vV | sed -n 's/^host: //p')"
mkdir -p dist
out="dist/agentgateway-$semver-$triple"
cp "$bin" "$out"
(cd dist && sha256sum "$(basename "$out")" > "$(basename "$out").sha256")
echo "$version"
echo "$out: $(stat -c %s "$out") bytes, $(rustc --version)"
cat "$out.sha256"
if [ "${1:-}" = --image ]; then
  deploy/container/build.sh "$bin"
fi
