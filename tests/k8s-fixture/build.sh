#!/usr/bin/env bash
# Builds the real-API-server test fixture:
#   kube-apiserver  (k8s.io/kubernetes/cmd/kube-apiserver)
#   etcd            (go.etcd.io/etcd/server/v3)
#   k8s-fixture     (launcher, ./cmd/k8s-fixture)
#   client-go-candidate (client-go leader-election reference for bench/, ./cmd/client-go-candidate)
# into $K8S_FIXTURE_BIN (default: <repo>/target/k8s-fixture/bin).
# Idempotent: skips the build when the binaries exist and the stamp matches.
# Respects GOCACHE / GOMODCACHE from the environment.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${K8S_FIXTURE_BIN:-$repo/target/k8s-fixture/bin}"
mkdir -p "$bin"
bin="$(cd "$bin" && pwd)"

export GOTOOLCHAIN=local
export CGO_ENABLED="${CGO_ENABLED:-0}"
GO="${GO:-go}"
if ! command -v "$GO" >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  GO=/usr/local/go/bin/go
fi

cd "$here"

# Versions are read from go.mod so the stamp and ldflags follow it.
k8s_version="$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' go.mod)"
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"

stamp_input() {
  {
    echo "go: $("$GO" version)"
    echo "cgo: $CGO_ENABLED"
    sha256sum go.mod go.sum build.sh
    find cmd -type f -name '*.go' | LC_ALL=C sort | xargs sha256sum
  }
}
# Concurrent runs (parallel test jobs, bench/run.sh) share the *.tmp names:
# serialise them; a waiting run then finds the stamp up to date.
exec 9>"$bin/.build.lock"
flock 9
want="$(stamp_input | sha256sum | cut -d' ' -f1)"
stamp="$bin/.k8s-fixture.stamp"

if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ] && [ -x "$bin/k8s-fixture" ] \
   && [ -x "$bin/client-go-candidate" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "k8s-fixture: up to date" >&2
  echo "$bin"
  exit 0
fi

rm -f "$stamp"
common=(-trimpath)
vpkg=k8s.io/component-base/version
k8s_ldflags="-s -w -X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$k8s_minor -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z"

echo "k8s-fixture: building kube-apiserver $k8s_version into $bin" >&2
"$GO" build "${common[@]}" -ldflags="$k8s_ldflags" -o "$bin/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
echo "k8s-fixture: building etcd" >&2
"$GO" build "${common[@]}" -ldflags="-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3
echo "k8s-fixture: building launcher" >&2
"$GO" build "${common[@]}" -ldflags="-s -w" -o "$bin/k8s-fixture.tmp" ./cmd/k8s-fixture
echo "k8s-fixture: building client-go-candidate" >&2
"$GO" build "${common[@]}" -ldflags="-s -w" -o "$bin/client-go-candidate.tmp" ./cmd/client-go-candidate

for b in kube-apiserver etcd k8s-fixture client-go-candidate; do mv -f "$bin/$b.tmp" "$bin/$b"; done
echo "$want" > "$stamp"
echo "$bin"
