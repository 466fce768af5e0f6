#!/usr/bin/env bash
# The chaos stage: builds the daemon and the API server fixture, lints the Python of the
# runner and its toolkit, then runs tests/chaos/chaos.py (arguments are passed on).
#   CHAOS_SEED=N     replay the schedule of seed N (printed by every run)
#   CHAOS_FAULTS=N   how many faults (default 50)
#   CHAOS_STRICT_CHILDREN=1  fail on overlapping run-mode children too
#   CHAOS_KEEP=1     keep the logs and record.json
# See docs/chaos.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

# The one place that knows how the daemon is built (features go here).
build_lease_elector() {
  cargo build --locked --bin lease-elector
}

lint_python() { # syntax of every file; pyflakes too when it is installed
  python3 -m py_compile tests/chaos/*.py tests/toolkit/*.py
  if python3 -m pyflakes --version >/dev/null 2>&1; then
    python3 -m pyflakes tests/chaos/*.py tests/toolkit/*.py
  fi
}

lint_python
tests/k8s-fixture/build.sh >/dev/null
build_lease_elector
exec python3 tests/chaos/chaos.py --lease-elector-bin "$root/target/debug/lease-elector" "$@"
