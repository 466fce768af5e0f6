#!/usr/bin/env bash
# Checks of the alert rules and the Grafana dashboard. Needs promtool (Debian's
# `prometheus` package; installed here when missing and running as root) and python3.
#
#   tests/prometheus/run.sh
#
# 1. promtool check rules   on the canonical rules file and on the shortened test copy
# 2. promtool test rules    tests/prometheus/alerts_test.yaml (every alert, fire and quiet cases)
# 3. mutation check         broken copies of the rules must make the unit tests fail
# 4. dashboard checks       tests/prometheus/dashboard_queries.py, plus a PromQL parse of
#                           every dashboard query through promtool
# 5. real Prometheus        tests/prometheus/real_prometheus.py (skip: LE_SKIP_REAL_PROMETHEUS=1); builds
#                           target/debug/lease-elector, whose metric set the fake targets copy
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rules="$root/helm/lease-elector/files/alerts.yaml"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "promtool missing: installing Debian's prometheus package" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
fi
command -v promtool >/dev/null 2>&1 || { echo "promtool not found (apt-get install prometheus)" >&2; exit 1; }
echo "using $(promtool --version 2>&1 | head -n1)"

. "$root/tests/toolkit/checks.sh"  # report, step, summary

step "promtool check rules (canonical)" promtool check rules "$rules"
step "make-test-rules.sh copy" bash -c "'$here/make-test-rules.sh' -f 5s -o '$work/test-rules.yaml' && promtool check rules '$work/test-rules.yaml' && ! grep -qE '^ +for: (1m|2m|5m)' '$work/test-rules.yaml' && [ \"\$(grep -cE '^ +for: 5s$' '$work/test-rules.yaml')\" = \"\$(grep -cE '^ +for: ' '$rules')\" ]"
step "promtool test rules" promtool test rules "$here/alerts_test.yaml"

# Mutation check: each edit breaks one alert in a way the unit tests must notice.
mkdir -p "$work/m/helm/lease-elector/files" "$work/m/tests/prometheus"
cp "$here/alerts_test.yaml" "$work/m/tests/prometheus/"
mutations=(
  's/round\(increase\((.*)\[15m\]\)\)/increase(\1[15m])/'       # extrapolation not undone
  's/round\(increase\(/round(delta(/'                              # counter resets not handled
  's/max by \(namespace, lease\) \(round/sum by (namespace, lease) (round/' # Flapping counts a change once per candidate
  's/lease_elector_observed_leader_changes_total\[15m\]/lease_elector_leadership_transitions_total{direction="acquired"}[15m]/' # Flapping blind to a crash-looping leader
  's/(sum by \(namespace, lease\) \(lease_elector_is_leader\)) == 0/\1 == 0 and on() vector(0) == 1/' # NoLeader never fires
  '/alert: LeaseElectorNoLeader/,/for:/ s/for: .*/for: 15s/'        # NoLeader too eager
  '/alert: LeaseElectorSplitBrain/,/for:/ s/for: .*/for: 15s/'      # SplitBrain fires on a handover
  's/absent\(lease_elector_is_leader\{job="lease-elector"\}\)/absent(lease_elector_is_leader)/' # absent across jobs
  's/> 0\.1$/> 0.3/'                                               # RenewFailures threshold
  's/\+$/-/'                                                       # RenewFailures ratio denominator
  's/\(lease_elector_identity_conflicts_total unless /(lease_elector_identity_conflicts_total and /' # DuplicateIdentity blind before a series' second sample
  's/^( +)\) > 0$/\1) > 1/'                                         # DuplicateIdentity misses a single sighting
)
for m in "${mutations[@]}"; do
  sed -E "$m" "$rules" > "$work/m/helm/lease-elector/files/alerts.yaml"
  if cmp -s "$rules" "$work/m/helm/lease-elector/files/alerts.yaml"; then
    report 1 "mutation did not apply: $m"; continue
  fi
  # the mutant must still be a valid rule file, and the unit tests must fail on it
  step "mutation caught: $m" bash -c "promtool check rules '$work/m/helm/lease-elector/files/alerts.yaml' && ! promtool test rules '$work/m/tests/prometheus/alerts_test.yaml'"
done

step "every alert has labels, annotations and a runbook_url whose anchor exists in docs/runbooks.md" python3 - "$rules" "$root/docs/runbooks.md" <<'PY'
import re, sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
doc = open(sys.argv[2]).read()
anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", doc, re.M)}
base = "https://github.com/lease-elector/lease-elector/blob/main/docs/runbooks.md#"
bad = []
names = []
for g in rules["groups"]:
    for r in g["rules"]:
        name = r.get("alert")
        names.append(name)
        if not re.match(r"^LeaseElector[A-Z][A-Za-z]+$", name or ""):
            bad.append(f"{name}: not a CamelCase LeaseElector* name")
        if r.get("labels", {}).get("severity") not in ("critical", "warning"):
            bad.append(f"{name}: severity must be critical or warning")
        ann = r.get("annotations", {})
        for k in ("summary", "description", "runbook_url"):
            if not ann.get(k):
                bad.append(f"{name}: missing annotation {k}")
        url = ann.get("runbook_url", "")
        if not url.startswith(base) or url[len(base):] not in anchors or url[len(base):] != name.lower():
            bad.append(f"{name}: runbook_url {url} has no matching section in docs/runbooks.md")
want = {"LeaseElectorNoLeader", "LeaseElectorCandidatesAbsent", "LeaseElectorFlapping", "LeaseElectorSplitBrain", "LeaseElectorRenewFailures",
        "LeaseElectorDuplicateIdentity"}
if set(names) != want:
    bad.append(f"alerts {sorted(names)} != {sorted(want)}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
step "dashboard structure" python3 "$here/dashboard_queries.py" --rule-file "$work/dashboard-queries.yaml"
step "dashboard queries parse (promtool)" promtool check rules "$work/dashboard-queries.yaml"
step "dashboard --print-queries" bash -c "[ \"\$(python3 '$here/dashboard_queries.py' --print-queries | grep -c .)\" -ge 10 ] && ! python3 '$here/dashboard_queries.py' --print-queries | grep -F '\$'"

# A real Prometheus (Debian's package ships the server with promtool) against fake
# targets on 127.0.0.1: every alert fires in its situation, every dashboard query runs.
# About 40 s; LE_SKIP_REAL_PROMETHEUS=1 skips it.
if [ "${LE_SKIP_REAL_PROMETHEUS:-0}" = 1 ]; then
  echo "skip real Prometheus test (LE_SKIP_REAL_PROMETHEUS=1)"
elif command -v prometheus >/dev/null 2>&1; then
  # the fake targets are made from the metric set of the real daemon: build it (a no-op when fresh)
  (cd "$root" && cargo build --locked --quiet --features daemon --bin lease-elector) || report 1 "cargo build --features daemon --bin lease-elector"
  step "real Prometheus: the fake exporter is the real metric set, alerts fire, dashboard queries run (real_prometheus.py)" \
    timeout 300 python3 "$here/real_prometheus.py" --lease-elector "${CARGO_TARGET_DIR:-$root/target}/debug/lease-elector"
else
  report 1 "real Prometheus test: no prometheus binary (apt-get install prometheus)"
fi

summary prometheus
