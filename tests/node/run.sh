#!/usr/bin/env bash
# lease-elector as Pods on a real single-node cluster, end to end:
#
#   tests/node/run.sh          # exit status 0 only when every step and scenario passed
#
# 1. builds (cached) the API server fixture, the node components, helm, and the images
#    from the Dockerfile (tests/dockerfile/build-image.sh);
# 2. starts the node in its own network namespace (tests/node/node.sh up);
# 3. runs the scenarios (tests/node/scenarios.py) inside that namespace: helm install of
#    the chart with the built image, leader deletion, leader SIGKILL, leader cut off the
#    API server, rollout, run mode, RBAC, helm test; prints a table of measured times;
# 4. stops the node by PID (also on failure or interrupt) and prints the component logs'
#    tails when anything failed.
#
# Environment: LE_NODE_NS / LE_NODE_DIR (see node.sh), KEEP_NODE=1 leaves the node up.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
export GOTOOLCHAIN=local
export PATH="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin:$PATH"
export K8S_FIXTURE_BIN="${K8S_FIXTURE_BIN:-$root/target/k8s-fixture/bin}"
export K8S_NODE_BIN="${K8S_NODE_BIN:-$root/target/k8s-node/bin}"
export LE_NODE_NS="${LE_NODE_NS:-le-node}"
export LE_NODE_DIR="${LE_NODE_DIR:-/tmp/le-node}"
passed=0 failed=0
t_all=$SECONDS

step() { # step NAME CMD...
  local name="$1" t0=$SECONDS
  shift
  # (to stderr: a caller may redirect the command's stdout)
  echo "=== node: $name" >&2
  if "$@"; then
    passed=$((passed + 1)); echo "=== node: $name: ok ($((SECONDS - t0)) s)" >&2; return 0
  fi
  failed=$((failed + 1)); echo "=== node: $name: FAILED ($((SECONDS - t0)) s)" >&2; return 1
}
finish() {
  echo "=== node: total $((SECONDS - t_all)) s"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}
teardown() {
  if [ "${KEEP_NODE:-0}" = 1 ]; then echo "node left running (KEEP_NODE=1): $LE_NODE_DIR"; return; fi
  "$here/node.sh" down || true
}

step "build the API server fixture" tests/k8s-fixture/build.sh >/dev/null || finish
step "build the node components" "$here/build.sh" >/dev/null || finish
step "install helm" tests/helm/install-helm.sh >/dev/null || finish
images="$(mktemp)"
step "build the images" tests/dockerfile/build-image.sh >"$images" || finish
LE_IMAGE="$(sed -n 1p "$images")"
LE_TEST_IMAGE="$(sed -n 2p "$images")"
rm -f "$images"
export LE_IMAGE LE_TEST_IMAGE

trap 'teardown; exit 130' INT TERM
if ! step "node up" env LE_NODE_IMAGES="$LE_IMAGE $LE_TEST_IMAGE" "$here/node.sh" up >/dev/null; then
  teardown
  finish
fi
# shellcheck disable=SC1091
set -a; . "$LE_NODE_DIR/env"; set +a
t0=$SECONDS
echo "=== node: scenarios"
nsenter "--net=/run/netns/$LE_NODE_NS" -- python3 "$here/scenarios.py" 2>&1 | tee "$LE_NODE_DIR/scenarios.log"
rc=${PIPESTATUS[0]}
# the scenarios' checks count one by one in the final line
line="$(grep -E '^scenarios: [0-9]+ passed, [0-9]+ failed' "$LE_NODE_DIR/scenarios.log" | tail -n1)"
if [ -n "$line" ]; then
  passed=$((passed + $(echo "$line" | awk '{print $2}'))); failed=$((failed + $(echo "$line" | awk '{print $4}')))
fi
if [ "$rc" != 0 ] || [ -z "$line" ]; then
  [ -n "$line" ] && [ "$(echo "$line" | awk '{print $4}')" != 0 ] || failed=$((failed + 1))
  echo "=== node: scenarios: FAILED ($((SECONDS - t0)) s)"
  "$here/node.sh" logs | tail -n 200
else
  echo "=== node: scenarios: ok ($((SECONDS - t0)) s)"
fi
teardown
trap - INT TERM
finish
