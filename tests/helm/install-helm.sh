#!/usr/bin/env bash
# Installs helm from the Go module proxy (no binary download), idempotently, and
# prints its version. The binary goes to $(go env GOPATH)/bin (or $HELM_BIN_DIR).
#
#   tests/helm/install-helm.sh            # HELM_VERSION defaults to v3.22.0
#
# A plain `go install` leaves helm's version at "v3.22" and its default Kubernetes
# version at 1.20, which fails this chart's kubeVersion ">=1.26.0-0" in `helm
# template`/`helm lint`. So the same -X flags as helm's Makefile are passed: the
# release version, and the Kubernetes version derived from helm's client-go
# (v0.X.Y -> 1.X).
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
command -v go >/dev/null || { echo "go not found" >&2; exit 1; }
bindir="${HELM_BIN_DIR:-$(go env GOPATH)/bin}"
helm="$bindir/helm"

if [ -x "$helm" ] && "$helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  echo "helm $HELM_VERSION already installed at $helm" >&2
else
  # outside any module, so a go.mod around the caller does not interfere
  cd /
  # client-go version of that helm release, from its go.mod in the module cache
  modroot="$(GOTOOLCHAIN=local go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  cgo="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$modroot/go.mod" | head -n1)"
  [ -n "$cgo" ] || { echo "cannot find the client-go version in $modroot/go.mod" >&2; exit 1; }
  ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.metadata="
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ld="$ld -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$cgo"
  done
  mkdir -p "$bindir"
  # -p 1 keeps the build gentle on a 2-core machine
  GOTOOLCHAIN=local GOBIN="$bindir" go install -p 1 -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
case ":$PATH:" in *":$bindir:"*) ;; *) echo "note: add $bindir to PATH" >&2 ;; esac
"$helm" version
