#!/bin/sh
# Prepares the build context of the FROM scratch image (see Dockerfile) from the compiled binary:
#   OUT/rootfs/  usr/bin/consensus (+ the grpc-health-probe link to it), exactly the shared libraries
#                `ldd` lists (copied with cp -L, so symlinks become files), etc/nsswitch.conf, /tmp
#   OUT/data/    empty; becomes /data, owned by uid 1000 in the image
# The rootfs is also a root folder for chroot. Usage: scripts/image-root.sh [BINARY [OUT]]
# (defaults dist/consensus and dist/image). Needs ldd, i.e. a glibc host like the build machine.
set -eu

bin=${1:-dist/consensus}
out=${2:-dist/image}
fail() {
  echo "image-root: $*" >&2
  exit 1
}

[ -f "$bin" ] && [ -x "$bin" ] || fail "$bin is missing or not executable (run 'npm run build' first)"
command -v ldd >/dev/null 2>&1 || fail "ldd not found; run this on the glibc machine that built $bin"
deps=$(ldd "$bin" 2>&1) || fail "ldd $bin failed: $deps"
case $deps in
  *"not found"*) fail "$bin needs libraries this machine lacks: $deps" ;;
esac

rm -rf "$out/rootfs" "$out/data"
mkdir -p "$out/rootfs/usr/bin" "$out/rootfs/etc" "$out/rootfs/tmp" "$out/data"
chmod 1777 "$out/rootfs/tmp"
cp "$bin" "$out/rootfs/usr/bin/consensus"
# Under this name the binary is grpc-ecosystem's probe (same flags and exit codes), which the Rust
# image shipped and cloud-config's liveness probe calls.
ln -s consensus "$out/rootfs/usr/bin/grpc-health-probe"

# Every absolute path ldd prints (the vdso has none), e.g. /lib/x86_64-linux-gnu/libc.so.6 and the
# loader /lib64/ld-linux-x86-64.so.2.
for lib in $(printf '%s\n' "$deps" | grep -o '/[^ ]*'); do
  mkdir -p "$out/rootfs$(dirname "$lib")"
  cp -L "$lib" "$out/rootfs$lib"
done

# Without this file glibc asks DNS before /etc/hosts, and a DNS answer for "localhost" (the sibling
# services' host) could beat the container's /etc/hosts.
printf 'hosts: files dns\n' > "$out/rootfs/etc/nsswitch.conf"

echo "image-root: $out ready ($(du -sh "$out/rootfs" | cut -f1)): $(cd "$out/rootfs" && find . ! -type d | sort | tr '\n' ' ')"
