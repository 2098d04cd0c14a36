#!/usr/bin/env bash
# Builds agentgateway's container image from an already-built binary, without pulling any base
# image: stages a root filesystem (the binary, the shared libraries `ldd` lists and the dynamic
# loader, a CA bundle, /etc/passwd with the non-root user) and builds Containerfile on it.
#
#   deploy/container/build.sh [BINARY [IMAGE]]
#
# BINARY  default: $CARGO_TARGET_DIR/release/agentgateway (cargo build --release --locked -p agentgateway)
# IMAGE   default: localhost/agentgateway:<version>
# ENGINE  the build command, default `podman` (or `docker` when there is no podman); may carry
#         global flags, e.g. ENGINE="podman --root /tmp/ctr --runtime runc"
# CA_BUNDLE  default: /etc/ssl/certs/ca-certificates.crt (Debian's ca-certificates)
#
# Prints the image name and its size. The binary's debug info is stripped in the image (its
# symbols stay, so panics still name functions); the binary itself is left as it is.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
bin="${1:-$target/release/agentgateway}"
ca="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
engine="${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}"

[ -x "$bin" ] || { echo "no binary at $bin: build it first (cargo build --release --locked -p agentgateway)" >&2; exit 1; }
[ -r "$ca" ] || { echo "no CA bundle at $ca: install Debian's ca-certificates or set CA_BUNDLE" >&2; exit 1; }
version="$("$bin" --version | sed -n 's/^agentgateway \([^ ]*\) (commit \(.*\))$/\1 \2/p')"
read -r semver revision <<<"${version:-unknown unknown}"
image="${2:-localhost/agentgateway:$semver}"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
install -d -m 0755 "$root/usr/local/bin" "$root/etc/agentgateway" "$root/etc/ssl/certs"
# Strip into the image only; objcopy keeps the symbol table (backtraces name functions).
if command -v objcopy >/dev/null; then
  objcopy --strip-debug "$bin" "$root/usr/local/bin/agentgateway"
else
  cp "$bin" "$root/usr/local/bin/agentgateway"
fi
chmod 0755 "$root/usr/local/bin/agentgateway"

# Exactly what the binary links: `ldd` prints "name => /path (addr)" for each library and
# "/path (addr)" for the loader. A static binary prints "not a dynamic executable".
if ldd "$bin" >/dev/null 2>&1; then
  ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
    install -d -m 0755 "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  # /lib64 and /lib are symlinks on merged-/usr systems: ldd's paths are the ones the binary
  # asks for (PT_INTERP, DT_NEEDED through the default search path), so copying to them works.
fi
cp "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/nonexistent:/nonexistent\nagentgateway:x:65532:65532:agentgateway:/nonexistent:/nonexistent\n' > "$root/etc/passwd"
printf 'root:x:0:\nagentgateway:x:65532:\n' > "$root/etc/group"
# glibc's resolver: /etc/hosts first (localhost), then DNS. Runtimes mount their own
# /etc/hosts and /etc/resolv.conf over the image's.
printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$root/etc/hosts"
cp "$here/Containerfile" "$ctx/Containerfile"

format=()
case "$engine" in podman*) format=(--format docker --timestamp 0) ;; esac
$engine build "${format[@]}" --build-arg "VERSION=$semver" --build-arg "REVISION=$revision" \
  -t "$image" -f "$ctx/Containerfile" "$ctx" >&2
size="$($engine image inspect --format '{{.Size}}' "$image")"
echo "$image $size bytes ($(( size / 1024 / 1024 )) MiB)"
