#!/usr/bin/env bash
# The chaos stage: lints the Python of the runner and its toolkit, tests its checks on
# made-up records (test_verdict.py), builds the API server fixture and the daemon, then
# runs tests/chaos/chaos.py (arguments are passed on).
#   CHAOS_SEED=N     replay the schedule of seed N (printed by every run)
#   CHAOS_FAULTS=N   how many faults (default 50)
#   CHAOS_STRICT_CHILDREN=0  report overlapping run-mode children without failing
#   CHAOS_KEEP=1     keep the logs and record.json
# See docs/chaos.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

# The one place that knows how the daemon is built (features go here).
build_lease_elector() {
  cargo build --locked --features daemon --bin lease-elector
}

lint_python() { # syntax of every file; pyflakes too when it is installed (.ci/run installs it)
  local files=(tests/chaos/*.py tests/toolkit/*.py)
  python3 -m py_compile "${files[@]}"
  if command -v pyflakes3 >/dev/null; then
    pyflakes3 "${files[@]}"
  else
    echo "pyflakes3 not installed (apt-get install pyflakes3): syntax checked only"
  fi
}

lint_python
python3 -m unittest discover -s tests/chaos -p 'test_*.py' # the checks find what they must
tests/k8s-fixture/build.sh >/dev/null
build_lease_elector
exec python3 tests/chaos/chaos.py --lease-elector-bin "$root/target/debug/lease-elector" "$@"
