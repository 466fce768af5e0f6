#!/usr/bin/env bash
# Builds Jaeger (github.com/jaegertracing/jaeger/cmd/jaeger, the all-in-one v2
# binary: OTLP receiver, query API and UI) from the Go module proxy into
# $JAEGER_BIN (default: <repo>/target/jaeger/bin), for the integration test.
# Idempotent: skips the build when the binary exists and the stamp matches.
# Respects GOCACHE / GOMODCACHE from the environment. Prints the bin directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${JAEGER_BIN:-$repo/target/jaeger/bin}"
mkdir -p "$bin"
bin="$(cd "$bin" && pwd)"

JAEGER_VERSION=v1.76.0
export GOTOOLCHAIN=local
export CGO_ENABLED="${CGO_ENABLED:-0}"
GO="${GO:-go}"
if ! command -v "$GO" >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  GO=/usr/local/go/bin/go
fi

exec 9>"$bin/.build.lock"
flock 9
want="$({ echo "go: $("$GO" version)"; echo "cgo: $CGO_ENABLED"; echo "jaeger: $JAEGER_VERSION"; sha256sum "$here/build.sh"; } | sha256sum | cut -d' ' -f1)"
stamp="$bin/.jaeger.stamp"
if [ -x "$bin/jaeger" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "jaeger: up to date" >&2
  echo "$bin"
  exit 0
fi

rm -f "$stamp"
echo "jaeger: building github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION into $bin" >&2
start=$(date +%s)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# `go install …@version` refuses a module whose go.mod has replace directives
# (Jaeger's has one), so the module's source is fetched from the proxy and
# built as the main module. Its UI is not in the module (only a placeholder
# page is embedded): the query API is what the test uses.
mod="github.com/jaegertracing/jaeger"
src="$(cd "$tmp" && "$GO" mod download -json "$mod@$JAEGER_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -d "$src" ] || { echo "jaeger: go mod download $mod@$JAEGER_VERSION failed" >&2; exit 1; }
cp -r "$src" "$tmp/src" && chmod -R u+w "$tmp/src"
(cd "$tmp/src" && "$GO" build -trimpath -ldflags="-s -w" -o "$bin/jaeger.tmp" ./cmd/jaeger)
mv -f "$bin/jaeger.tmp" "$bin/jaeger"
echo "$want" > "$stamp"
echo "jaeger: built in $(( $(date +%s) - start )) s" >&2
echo "$bin"
