#!/usr/bin/env bash
# Builds the node components of the single-node cluster used by tests/node, from the
# fixture's Go module (tests/k8s-fixture: k8s.io/kubernetes v1.36.3, same replaces):
#   kubelet, kube-scheduler, kube-controller-manager, kube-proxy   (k8s.io/kubernetes/cmd/...)
#   node-pause                                                     (./cmd/node-pause)
# into $K8S_NODE_BIN (default: <repo>/target/k8s-node/bin), in one `go build` (shared
# compile cache), then the pause image archive (TEST DOUBLE of registry.k8s.io/pause).
# etcd and kube-apiserver come from tests/k8s-fixture/build.sh.
# Idempotent: skips the build when the binaries exist and the stamp matches.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
mod="$repo/tests/k8s-fixture"
bin="${K8S_NODE_BIN:-$repo/target/k8s-node/bin}"
mkdir -p "$bin"
bin="$(cd "$bin" && pwd)"
export GOTOOLCHAIN=local CGO_ENABLED=0
GO="${GO:-go}"
if ! command -v "$GO" >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; fi
cd "$mod"
k8s_version="$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' go.mod)"
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"
cmds=(kubelet kube-scheduler kube-controller-manager kube-proxy)
stamp_input() {
  echo "go: $("$GO" version)"
  sha256sum go.mod go.sum "$here/build.sh" cmd/node-pause/*.go
  command -v buildah >/dev/null && dpkg-query -W -f='${Version}\n' buildah
}
exec 9>"$bin/.build.lock"
flock 9
want="$(stamp_input | sha256sum | cut -d' ' -f1)"
stamp="$bin/.k8s-node.stamp"
all_there() {
  for c in "${cmds[@]}" node-pause; do [ -x "$bin/$c" ] || return 1; done
  [ -s "$bin/pause-image.tar" ]
}
if all_there && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "k8s-node: up to date" >&2
  echo "$bin"
  exit 0
fi
rm -f "$stamp"
t0=$SECONDS
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$k8s_minor -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"
echo "k8s-node: building ${cmds[*]} $k8s_version and node-pause into $bin" >&2
tmp="$bin/.tmp"
rm -rf "$tmp" && mkdir -p "$tmp"
pkgs=()
for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
"$GO" build -trimpath -ldflags="$ldflags" -o "$tmp/" "${pkgs[@]}" ./cmd/node-pause
for c in "${cmds[@]}" node-pause; do mv -f "$tmp/$c" "$bin/$c"; done
rmdir "$tmp"
echo "k8s-node: go build took $((SECONDS - t0)) s" >&2

# The pause image, a TEST DOUBLE of registry.k8s.io/pause: FROM scratch + node-pause.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$repo/tests/dockerfile/containers.conf}"
ctr="$(buildah from scratch)"
mnt="$(buildah mount "$ctr")"
cp "$bin/node-pause" "$mnt/pause"
buildah umount "$ctr" >/dev/null
buildah config --entrypoint '["/pause"]' --user 65535:65535 \
  --label org.opencontainers.image.description="TEST DOUBLE of registry.k8s.io/pause (lease-elector CI)" "$ctr"
buildah commit --quiet --format docker --rm "$ctr" localhost/le-node-pause:1 >/dev/null
rm -f "$bin/pause-image.tar"
podman save --quiet --format docker-archive -o "$bin/pause-image.tar" localhost/le-node-pause:1
echo "$want" > "$stamp"
echo "k8s-node: built in $((SECONDS - t0)) s" >&2
echo "$bin"
