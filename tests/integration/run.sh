#!/usr/bin/env bash
# Proof on real components (issue 4 section 5): the Helm chart, three lease-elector
# daemons, the alert rules and the dashboard against a real kube-apiserver (the
# k8s-fixture) and a real Prometheus. See real_components.py for what is checked.
#
#   tests/integration/run.sh [--keep] [--keep-on-failure]
#
# Builds or installs what is missing first:
#   - the fixture binaries   tests/k8s-fixture/build.sh (a no-op when built)
#   - jaeger                 tests/jaeger/build.sh (from the Go module proxy; a no-op when built)
#   - the daemon             cargo build --features daemon --bin lease-elector (target/debug/lease-elector)
#   - helm                   tests/helm/install-helm.sh (go install) when not on PATH
#   - prometheus, promtool   Debian's `prometheus` package (apt-get, as root) when missing
# Needs kubectl and python3 >= 3.11 (standard library; helpers from tests/toolkit).
# The offline chart checks (tests/helm/lint.sh) are not repeated here: scripts/test.sh chart.
# The test is bounded by INTEGRATION_TIMEOUT seconds (default 480; about 2.5 minutes
# normally). The last line is "N passed, M failed"; the exit status is non-zero on
# any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

gopath="$(go env GOPATH 2>/dev/null || echo "$HOME/go")"
export PATH="$gopath/bin:$PATH"
fail_setup() { echo "setup: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

command -v kubectl >/dev/null 2>&1 || fail_setup "kubectl not found"
command -v helm >/dev/null 2>&1 || "$root/tests/helm/install-helm.sh" >&2 || fail_setup "cannot install helm"
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "prometheus missing: installing Debian's prometheus package" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
      || fail_setup "apt-get install prometheus failed"
  fi
fi
command -v prometheus >/dev/null 2>&1 || fail_setup "prometheus not found (apt-get install prometheus)"
# the dashboard pictures (scripts/render-dashboard.py runs on Debian's python3)
if ! /usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "matplotlib missing: installing Debian's python3-matplotlib" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-matplotlib >/dev/null \
      || fail_setup "apt-get install python3-matplotlib failed"
  fi
fi
/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1 || fail_setup "matplotlib not found (apt-get install python3-matplotlib)"

fixture_bin="$("$root/tests/k8s-fixture/build.sh" | tail -n1)" || fail_setup "tests/k8s-fixture/build.sh failed"
jaeger_bin="$("$root/tests/jaeger/build.sh" | tail -n1)" || fail_setup "tests/jaeger/build.sh failed"
(cd "$root" && cargo build --quiet --features daemon --bin lease-elector) || fail_setup "cargo build failed"
bin="${CARGO_TARGET_DIR:-$root/target}/debug/lease-elector"

# timeout sends SIGTERM to the test (it then stops everything it started); -k: SIGKILL
# 30 s later, and the children die with it (PR_SET_PDEATHSIG)
exec timeout -k 30 "${INTEGRATION_TIMEOUT:-480}" python3 "$here/real_components.py" \
  --fixture-bin "$fixture_bin" --lease-elector "$bin" --helm "$(command -v helm)" \
  --prometheus "$(command -v prometheus)" --jaeger "$jaeger_bin/jaeger" "$@"
