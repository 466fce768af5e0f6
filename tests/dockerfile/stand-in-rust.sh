#!/usr/bin/env bash
# TEST DOUBLE of the Dockerfile's builder base image `rust:1.95-bookworm`.
#
# No image can be pulled on the CI machines, so a local image of the same name is
# assembled instead: a Debian bookworm rootfs (mmdebstrap: bash, gcc, libc6-dev,
# ca-certificates) plus the host's Rust toolchain (~/.rustup) laid out as in the
# official image (RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo, cargo and
# rustc on PATH). It is NOT the official image; it only stands in for it so that the
# real Dockerfile can be built unchanged with `buildah bud --pull=never`.
#
# Cached: skipped when the image exists and its stamp (toolchain version, this script)
# matches. Prints the image name.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
name="docker.io/library/rust:1.95-bookworm"
cache="${LEASE_ELECTOR_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lease-elector/images}"
mkdir -p "$cache"
toolchain="$(rustc --print sysroot)"
want="$( { rustc --version; cargo --version; sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1; } | sha256sum | cut -d' ' -f1)"
stamp="$cache/stand-in-rust.stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && buildah inspect --type image "$name" >/dev/null 2>&1; then
  echo "stand-in $name: up to date" >&2
  echo "$name"; exit 0
fi
rm -f "$stamp"
t0=$SECONDS
rootfs="$cache/bookworm-rust-builder"
if [ ! -x "$rootfs/usr/bin/gcc" ]; then
  echo "stand-in $name: mmdebstrap bookworm rootfs" >&2
  rm -rf "$rootfs.tmp"
  mmdebstrap --quiet --format=directory --variant=apt --include=bash,gcc,libc6-dev,ca-certificates \
    bookworm "$rootfs.tmp" "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >&2
  rm -rf "$rootfs" && mv "$rootfs.tmp" "$rootfs"
fi
echo "stand-in $name: adding the host toolchain $(rustc --version)" >&2
ctr="$(buildah from scratch)"
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
mnt="$(buildah mount "$ctr")"
cp -a "$rootfs/." "$mnt/"
tc="$mnt/usr/local/rustup/toolchains/stable-x86_64-unknown-linux-gnu"
mkdir -p "$tc" "$mnt/usr/local/cargo/bin"
tar -C "$toolchain" --exclude=./share/doc --exclude=./share/man -cf - . | tar -C "$tc" -xf -
for b in "$tc"/bin/*; do ln -s "/usr/local/rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/$(basename "$b")" "$mnt/usr/local/cargo/bin/"; done
# cargo inside the build talks to crates.io through this machine's CA bundle
cp /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/ca-certificates.crt"
buildah umount "$ctr" >/dev/null
buildah config --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
  --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env RUST_VERSION="$(rustc --version | awk '{print $2}')" \
  --label org.opencontainers.image.description="TEST DOUBLE of rust:1.95-bookworm (lease-elector CI)" \
  --cmd /bin/bash "$ctr"
buildah commit --quiet --format docker --rm "$ctr" "$name" >/dev/null
trap - EXIT
echo "$want" > "$stamp"
echo "stand-in $name: built in $((SECONDS - t0)) s" >&2
echo "$name"
