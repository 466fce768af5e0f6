#!/usr/bin/env bash
# Regenerates docs/img/failover-timeline.png and docs/img/dashboard-preview.png (and,
# without --from, docs/img/failover-trace.png: one failover's spans as a real Jaeger
# returned them, drawn by scripts/render-trace.py) from a fresh real run: the integration test (a real kube-apiserver, three daemons, leaders
# killed, cut off and released, a real Prometheus) draws them at its end with
# scripts/render-dashboard.py and the dashboard's own queries. With --from, a
# Prometheus on an earlier run's kept TSDB (run.sh --keep) serves the data instead.
#
#   scripts/pictures.sh [--from KEPT_DIR] [--out DIR]
#
# --from: draw from an earlier `run.sh --keep` directory instead of a new run.
# --out:  where the PNGs go (default docs/img). Needs python3-matplotlib (Debian).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/docs/img" from=""
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: scripts/pictures.sh [--from KEPT_DIR] [--out DIR]" >&2; exit 2 ;;
  esac
done

if [ -z "$from" ]; then
  # the integration test draws them itself, from its own Prometheus, before it stops
  # (not a LEASE_ELECTOR_* name: the daemons refuse unknown settings in that namespace)
  mkdir -p "$out"
  DASHBOARD_PICTURES_DIR="$out" exec "$root/tests/integration/run.sh"
fi
[ -d "$from/prometheus-data" ] || { echo "pictures: no $from/prometheus-data" >&2; exit 1; }

# a Prometheus that only serves the kept data: no scrapes, no rules
conf="$(mktemp -d)"
printf 'global:\n  scrape_interval: 1h\nscrape_configs: []\n' >"$conf/prometheus.yml"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
prometheus --config.file="$conf/prometheus.yml" --storage.tsdb.path="$from/prometheus-data" \
  --storage.tsdb.retention.time=3650d --web.listen-address="127.0.0.1:$port" >"$conf/prometheus.log" 2>&1 &
prom_pid=$!
stop() {
  kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null || true
  rm -rf "$conf"
  if [ "${cleanup_from:-}" = 1 ]; then rm -rf "$from"; fi
}
trap stop EXIT
for _ in $(seq 120); do
  curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
  sleep 0.5
done

# the integration test scrapes every second (tests/integration/real_components.py)
"$root/scripts/render-dashboard.py" --prometheus "http://127.0.0.1:$port" --out "$out" --scrape-interval 1
