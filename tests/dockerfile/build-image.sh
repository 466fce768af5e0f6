#!/usr/bin/env bash
# Builds the image from the repository's Dockerfile with buildah, as CI does, and checks
# what it promises: size, a static binary, non-root 65532, read-only root filesystem and
# no capabilities. Also builds the test image used by tests/node (see below).
#
#   tests/dockerfile/build-image.sh            # prints the image names on stdout
#
# Images (local containers-storage of root):
#   ghcr.io/lease-elector/lease-elector:<appVersion>  from ./Dockerfile, the name the chart
#       uses by default and the README tells users to build (nothing is published yet)
#   localhost/lease-elector-test-busybox:<appVersion>  TEST IMAGE: the image above plus
#       Debian's static busybox (sh, wget, ...), for run mode with a shell workload and the
#       chart's `helm test` Pod
#   docker.io/library/rust:1.95-bookworm   TEST DOUBLE of the builder base image
#       (tests/dockerfile/stand-in-rust.sh), because no image can be pulled here
#
# Cached: when the inputs (Dockerfile, .dockerignore, Cargo.toml, Cargo.lock, src/, this
# script) are unchanged and the images exist, nothing is built. buildah's --layers cache
# makes a build after a change under src/ reuse the dependency layer. The host's cargo
# registry is copied into the cache and mounted at build time (-v), so the build does not
# download crates; the Dockerfile itself stays a plain `docker build`-able file.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
cache="${LEASE_ELECTOR_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lease-elector/images}"
mkdir -p "$cache"
version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' helm/lease-elector/Chart.yaml)"
image="${LEASE_ELECTOR_IMAGE:-ghcr.io/lease-elector/lease-elector:$version}"
test_image="${LEASE_ELECTOR_TEST_IMAGE:-localhost/lease-elector-test-busybox:$version}"
MAX_MB="${MAX_IMAGE_MB:-20}"
t_all=$SECONDS
step() { echo "--- $* ($((SECONDS - t_all)) s)" >&2; }
for tool in buildah podman; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is not installed (apt-get install buildah podman runc)" >&2; exit 1; }
done

exec 9>"$cache/.build-image.lock"
flock 9

inputs() {
  {
    sha256sum Dockerfile .dockerignore Cargo.toml Cargo.lock "${BASH_SOURCE[0]}" "$here/stand-in-rust.sh"
    find src -type f | LC_ALL=C sort | xargs sha256sum
    rustc --version
    dpkg-query -W -f='${Version}\n' buildah
  } | sha256sum | cut -d' ' -f1
}
want="$(inputs)"
stamp="$cache/image.stamp"
built=0
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && podman image exists "$image" && podman image exists "$test_image"; then
  step "image $image: up to date"
else
  rm -f "$stamp"
  step "builder stand-in"
  "$here/stand-in-rust.sh" >/dev/null
  # the host's downloaded crates, for the build-time mount
  mkdir -p "$cache/cargo-registry"
  for d in index cache; do
    [ -d "$HOME/.cargo/registry/$d" ] && cp -a --update "$HOME/.cargo/registry/$d" "$cache/cargo-registry/"
  done
  step "buildah bud $image"
  t0=$SECONDS
  buildah bud --quiet --format docker --pull=never --network host --layers \
    -v "$cache/cargo-registry:/usr/local/cargo/registry" \
    --build-arg VERSION="$version" \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    -t "$image" -f Dockerfile . >&2
  echo "build-image: image built in $((SECONDS - t0)) s" >&2

  step "test image $test_image (TEST IMAGE: + Debian busybox-static)"
  bb="$cache/busybox-static"
  if [ ! -x "$bb/bin/busybox" ]; then
    tmpd="$(mktemp -d)"
    (cd "$tmpd" && apt-get download busybox-static >/dev/null 2>&1) \
      || { echo "build-image: apt-get download busybox-static failed" >&2; exit 1; }
    rm -rf "$bb" && dpkg -x "$tmpd"/busybox-static_*.deb "$bb" && rm -rf "$tmpd"
  fi
  ctr="$(buildah from --pull=never "$image")"
  mnt="$(buildah mount "$ctr")"
  mkdir -p "$mnt/bin"
  cp "$bb/bin/busybox" "$mnt/bin/busybox"
  for app in sh cat date echo grep sleep timeout wget kill printf test true false tail head; do
    ln -sf busybox "$mnt/bin/$app"
  done
  buildah umount "$ctr" >/dev/null
  buildah config --label org.opencontainers.image.description="TEST IMAGE: lease-elector + busybox (lease-elector CI)" \
    --env PATH=/usr/local/bin:/bin "$ctr"
  buildah commit --quiet --format docker --rm "$ctr" "$test_image" >/dev/null
  built=1
fi

step "checks"
fail=0
check() { if "$@" >/dev/null 2>&1; then echo "ok   ${desc}" >&2; else echo "FAIL ${desc}" >&2; fail=1; fi; }
size=$(podman image inspect --format '{{.Size}}' "$image")
ctr="$(buildah from --pull=never "$image")"
mnt="$(buildah mount "$ctr")"
bin_size=$(stat -c %s "$mnt/usr/local/bin/lease-elector")
static_out="$(file -b "$mnt/usr/local/bin/lease-elector" 2>/dev/null || true)"
files="$(cd "$mnt" && find . -mindepth 1 | LC_ALL=C sort | tr '\n' ' ')"
buildah umount "$ctr" >/dev/null; buildah rm "$ctr" >/dev/null
echo "image $image: $((size / 1024)) KiB ($(awk -v s="$size" 'BEGIN{printf "%.1f", s/1048576}') MiB), binary $((bin_size / 1024)) KiB" >&2
echo "image contents: $files" >&2
desc="image <= $MAX_MB MiB"; check test "$size" -le $((MAX_MB * 1048576))
desc="binary is statically linked ($static_out)"; check grep -q 'statically linked\|static-pie linked' <<<"$static_out"
user="$(podman image inspect --format '{{.Config.User}}' "$image")"
desc="image user is 65532:65532 ($user)"; check test "$user" = 65532:65532
run=(podman run --rm --network none --read-only --cap-drop ALL --security-opt no-new-privileges)
desc="runs --help with read-only root, no capabilities, no-new-privileges"
check "${run[@]}" "$image" --help
out="$("${run[@]}" --entrypoint /usr/local/bin/lease-elector "$test_image" run --help 2>&1 || true)"
desc="test image: lease-elector run --help"; check grep -qi 'usage' <<<"$out"
id_out="$("${run[@]}" --entrypoint /bin/sh "$test_image" -c 'echo uid=$(cat /proc/self/status | grep ^Uid)' 2>&1 || true)"
desc="test image runs as 65532 ($id_out)"; check grep -q 'Uid:.65532' <<<"$id_out"
[ "$fail" = 0 ] || { echo "build-image: checks failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "build-image: done in $((SECONDS - t_all)) s (built: $built)" >&2
echo "$image"
echo "$test_image"
