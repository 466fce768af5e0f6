#!/usr/bin/env bash
# The whole test suite, as CI runs it (the README's test command):
#
#   scripts/test.sh
#
# 1. builds the real kube-apiserver + etcd fixture from Go modules (cached:
#    a no-op when nothing changed) and helm from the Go module proxy;
# 2. cargo test: unit tests (state machine over the in-memory test double,
#    config, supervisor), CLI tests, and the end-to-end tests that drive the
#    real binary against the real API server (required here: E2E_REQUIRED=1);
# 3. alert rules (promtool) and dashboard checks, with a real Prometheus;
# 4. Helm chart lint/template checks and the Dockerfile checks;
# 5. the chart installed on the real API server, three daemons under its
#    ServiceAccount, scraped by a real Prometheus while leaders fail;
# 6. the failover benchmark in quick mode (prints numbers, asserts nothing).
#
# Set SKIP_BENCH=1 to leave out step 6.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export GOTOOLCHAIN=local
export PATH="$(go env GOPATH)/bin:$PATH"

passed=0
failed=0
failures=()
stage() { # stage NAME CMD...
  local name="$1"
  shift
  echo
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== $name: ok ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "=== $name: FAILED ($((SECONDS - t0)) s)"
  fi
}

stage "build the API server fixture" tests/k8s-fixture/build.sh
stage "install helm" tests/helm/install-helm.sh
export K8S_FIXTURE_BIN="${K8S_FIXTURE_BIN:-$root/target/k8s-fixture/bin}"
stage "cargo test (unit, CLI, end-to-end)" \
  env E2E_REQUIRED=1 cargo test --locked -- --nocapture --test-threads=2
stage "alert rules and dashboard" tests/prometheus/run.sh
stage "helm chart" tests/helm/lint.sh
stage "Dockerfile" tests/dockerfile/check.sh
if [ -x tests/integration/run.sh ]; then
  stage "chart on the real API server with a real Prometheus" tests/integration/run.sh
fi
if [ -x bench/run.sh ] && [ "${SKIP_BENCH:-0}" != 1 ]; then
  stage "failover benchmark (quick)" bench/run.sh --quick
fi

echo
for f in "${failures[@]}"; do echo "failed stage: $f"; done
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
