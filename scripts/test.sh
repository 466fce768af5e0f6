#!/usr/bin/env bash
# The whole test suite, as CI runs it (the README's test command), or some of its stages:
#
#   scripts/test.sh              every stage, in this order (CI)
#   scripts/test.sh STAGE...     only these stages, e.g. `scripts/test.sh unit` or
#                                `scripts/test.sh fixture integration`
#   scripts/test.sh --list       the stages, one per line: NAME  what it runs
#
# Stages (each check runs in exactly one of them):
#   fixture      build the real kube-apiserver + etcd fixture (tests/k8s-fixture/build.sh),
#                helm (tests/helm/install-helm.sh) and Jaeger (tests/jaeger/build.sh, for the
#                integration stage) from Go modules; a no-op when built
#   unit         cargo test --features daemon --lib --bins, and the doc tests: the state
#                machine over the in-memory test double, config, supervisor
#   features     scripts/check-features.sh: each documented feature set (none, metrics,
#                daemon) builds and tests alone, the lean dependency tree, the examples,
#                cargo doc without warnings, the package's file list
#   e2e          cargo test --features daemon --test '*' (every tests/*.rs: CLI tests and the end-to-end
#                tests that drive the real binary against the real API server, required
#                here: E2E_REQUIRED=1)
#   chaos        tests/chaos/run.sh: a mixed fleet (lease-elector, run mode, client-go) on
#                one Lease under 50 random faults on the real API server (docs/chaos.md);
#                CHAOS_SEED replays a schedule, CHAOS_FAULTS sets how many
#   prometheus   alert rules (promtool unit and mutation tests), dashboard checks, and
#                a real Prometheus over fake targets made from the real metric set
#   chart        tests/helm/lint.sh: helm lint --strict, helm template renders and checks
#   dockerfile   tests/dockerfile/check.sh
#   image        tests/dockerfile/build-image.sh (skipped while it does not exist)
#   integration  the chart installed on the real API server, three daemons under its
#                ServiceAccount, scraped by a real Prometheus while leaders fail
#   node         tests/node/run.sh: real nodes (skipped while it does not exist)
#   bench        the failover benchmark in quick mode (prints numbers, asserts nothing);
#                SKIP_BENCH=1 leaves it out of a run of every stage
#
# The stages that need the fixture build it themselves when it is missing (the
# build is locked and idempotent), so any stage can run alone.
# Prints "=== NAME: ok (N s)" / "=== NAME: FAILED (N s)" per stage and, last,
# "stages: N passed, N failed"; exits non-zero when a stage failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export GOTOOLCHAIN=local
export PATH="$(go env GOPATH)/bin:$PATH"
export K8S_FIXTURE_BIN="${K8S_FIXTURE_BIN:-$root/target/k8s-fixture/bin}"

STAGES=(fixture unit features e2e chaos prometheus chart dockerfile image integration node bench)

describe() {
  case "$1" in
    fixture) echo "build the API server fixture, helm and Jaeger from Go modules" ;;
    unit) echo "cargo test --features daemon --lib --bins + doc tests (state machine, config, supervisor); dashboard renderer" ;;
    features) echo "feature sets, lean tree, examples, docs, package list (scripts/check-features.sh)" ;;
    e2e) echo "cargo test --features daemon --test '*' (CLI, examples and end-to-end against the real API server)" ;;
    chaos) echo "random faults on a mixed fleet on the real API server (tests/chaos/run.sh)" ;;
    prometheus) echo "alert rules, dashboard, real Prometheus (tests/prometheus/run.sh)" ;;
    chart) echo "helm lint and template checks (tests/helm/lint.sh)" ;;
    dockerfile) echo "Dockerfile checks (tests/dockerfile/check.sh)" ;;
    image) echo "container image build (tests/dockerfile/build-image.sh, when present)" ;;
    integration) echo "chart on the real API server with a real Prometheus (tests/integration/run.sh)" ;;
    node) echo "real nodes (tests/node/run.sh, when present)" ;;
    bench) echo "failover benchmark, quick (bench/run.sh --quick)" ;;
    *) return 1 ;;
  esac
}

fixture_stage() { tests/k8s-fixture/build.sh && tests/helm/install-helm.sh && tests/jaeger/build.sh >/dev/null; }
unit_stage() {
  cargo test --locked --features daemon --lib --bins && cargo test --locked --features daemon --doc \
    && tests/pictures/test_renderer.py
}
e2e_stage() { env E2E_REQUIRED=1 cargo test --locked --features daemon --test '*' -- --nocapture --test-threads=2; }
optional() { # optional SCRIPT ARGS...: runs SCRIPT when it exists
  if [ -e "$1" ]; then "$@"; else echo "$1 does not exist yet: nothing to run"; fi
}

run_stage() {
  case "$1" in
    fixture) fixture_stage ;;
    unit) unit_stage ;;
    features) scripts/check-features.sh ;;
    e2e) e2e_stage ;;
    chaos) tests/chaos/run.sh ;;
    prometheus) tests/prometheus/run.sh ;;
    chart) tests/helm/lint.sh ;;
    dockerfile) tests/dockerfile/check.sh ;;
    image) optional tests/dockerfile/build-image.sh ;;
    integration) tests/integration/run.sh ;;
    node) optional tests/node/run.sh ;;
    bench) bench/run.sh --quick ;;
  esac
}

if [ "${1:-}" = --list ]; then
  for s in "${STAGES[@]}"; do printf '%-12s %s\n' "$s" "$(describe "$s")"; done
  exit 0
fi
selected=("$@")
if [ ${#selected[@]} -eq 0 ]; then
  for s in "${STAGES[@]}"; do
    if [ "$s" = bench ] && [ "${SKIP_BENCH:-0}" = 1 ]; then continue; fi
    selected+=("$s")
  done
fi
for s in "${selected[@]}"; do
  describe "$s" >/dev/null || { echo "unknown stage: $s (scripts/test.sh --list)" >&2; exit 2; }
done

passed=0
failed=0
failures=()
for name in "${selected[@]}"; do
  echo
  echo "=== $name: $(describe "$name")"
  t0=$SECONDS
  if (run_stage "$name"); then
    passed=$((passed + 1))
    echo "=== $name: ok ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "=== $name: FAILED ($((SECONDS - t0)) s)"
  fi
done

echo
for f in "${failures[@]}"; do echo "failed stage: $f"; done
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
