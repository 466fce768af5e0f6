#!/usr/bin/env bash
# Failover benchmark: lease-elector vs a client-go candidate, same machine,
# same run, same real API server. Builds what it needs, then runs
# bench/failover.py with any arguments given here, e.g.
#
#   bench/run.sh              # default mode: the numbers in docs/benchmarks.md (~6 min)
#   bench/run.sh --quick      # CI mode: fewer reps, 10 s window (< 2 min)
#   BENCH_RELEASE=1 bench/run.sh   # measure a release build of lease-elector
#   BENCH_RELEASE=1 bench/run.sh --scale   # scale mode (bench/scale.py): N = 10, 100
#                                  # candidates on one Lease, and 50 Leases x 3
#   bench/run.sh --scale --n 10 --reps 3 --crash-reps 3 --leases 0   # a quick scale run
#
# Prints a side-by-side table and "BENCH <impl> <metric>=<value>" lines.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"

# etcd, kube-apiserver, the launcher and the client-go candidate.
fixture_bin="$(tests/k8s-fixture/build.sh | tail -n1)"

if [ "${BENCH_RELEASE:-0}" = 1 ]; then
  profile=release
  cargo build --locked --release --features daemon --bin lease-elector >&2
else
  profile=debug
  cargo build --locked --features daemon --bin lease-elector >&2
fi
lease_elector="${CARGO_TARGET_DIR:-$repo/target}/$profile/lease-elector"
echo "bench: lease-elector $profile build: $lease_elector" >&2

script=failover.py
if [ "${1:-}" = --scale ]; then
  script=scale.py
  shift
fi
exec python3 "$here/$script" --fixture-bin "$fixture_bin" --lease-elector-bin "$lease_elector" "$@"
