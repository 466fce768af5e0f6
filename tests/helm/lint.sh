#!/usr/bin/env bash
# Lints and renders the lease-elector chart offline (no cluster needed).
#
#   tests/helm/lint.sh
#
# Needs helm (tests/helm/install-helm.sh installs it when missing), python3 >= 3.11
# with PyYAML, and promtool (tests/prometheus/run.sh installs it) for the
# PrometheusRule checks. Every case prints ok/FAIL; the last line is
# "helm: N passed, N failed".
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
chart="$root/helm/lease-elector"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

gopath="$(go env GOPATH 2>/dev/null || echo "$HOME/go")"
export PATH="$gopath/bin:$PATH"
if ! command -v helm >/dev/null 2>&1; then
  "$here/install-helm.sh" >&2 || { echo "cannot install helm" >&2; exit 1; }
fi
echo "using $(helm version --short)"
python3 -c 'import yaml, tomllib' 2>/dev/null || { echo "python3 >= 3.11 with PyYAML is needed (apt-get install python3-yaml)" >&2; exit 1; }
have_promtool=1; command -v promtool >/dev/null 2>&1 || have_promtool=0

. "$root/tests/toolkit/checks.sh"  # report, step, summary
# helm prints a warning for the dashboards symlink on every run; keep it out of the logs
quiet() { grep -v 'found symbolic link in path' || true; }

# expect_ok NAME CMD...: the command must succeed
expect_ok() { local name="$1"; shift; "$@" >"$work/out" 2>&1; report $? "$name" "$work/out"; }
# expect_fail NAME PATTERN CMD...: the command must fail and print PATTERN
expect_fail() {
  local name="$1" pattern="$2"; shift 2
  if "$@" >"$work/out" 2>&1; then report 1 "$name (rendered, should have failed)" "$work/out"
  elif grep -qE "$pattern" "$work/out"; then report 0 "$name"
  else report 1 "$name (failed without /$pattern/)" "$work/out"; fi
}
render() { # render OUT ARGS...: helm template into OUT
  local out="$1"; shift
  helm template "${RELEASE:-rel}" "$chart" --namespace ops "$@" 2>"$work/render.err" >"$out"
  local rc=$?; quiet <"$work/render.err" >&2; return $rc
}
check() { # check SCENARIO ARGS...: render and run check_render.py SCENARIO
  local scenario="$1"; shift
  if render "$work/$scenario.yaml" "$@"; then
    python3 "$here/check_render.py" "$scenario" "$work/$scenario.yaml" >"$work/out" 2>&1
    report $? "render + checks: $scenario ($(tail -n1 "$work/out" | sed 's/^ *//'))" "$work/out"
  else
    report 1 "render: $scenario" "$work/render.err"
  fi
}

# --- helm lint --strict
expect_ok "helm lint --strict (defaults)" helm lint --strict "$chart"
expect_ok "helm lint --strict (all features)" helm lint --strict "$chart" -f "$here/values-all.yaml"
expect_ok "helm lint --strict (podMonitor, readiness leader)" helm lint --strict "$chart" \
  --set podMonitor.enabled=true --set http.readiness=leader --set podDisruptionBudget.enabled=false

# --- renders and their structure
check defaults
check all -f "$here/values-all.yaml"
check podmonitor --set podMonitor.enabled=true --set podMonitor.additionalLabels.release=kps
check readiness-leader --set http.readiness=leader --set podDisruptionBudget.enabled=false
# helm allows release names of up to 53 characters; with "-lease-elector" that is 67
RELEASE=a-very-long-release-name-that-goes-on-and-on-and-on-x check long-name
check sameness --set prometheusRule.enabled=true --set-string 'prometheusRule.absentMatchers=job="lease-elector"'

# --- the PrometheusRule's groups are a valid rule file, and with the default
#     matchers the promtool unit tests pass on the rendered rules too
if [ "$have_promtool" = 1 ]; then
  mkdir -p "$work/pr/helm/lease-elector/files" "$work/pr/tests/prometheus"
  cp "$root/tests/prometheus/alerts_test.yaml" "$work/pr/tests/prometheus/"
  prom_spec() { python3 -c 'import sys,yaml
docs=[d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"]=="PrometheusRule"]
print(yaml.safe_dump(docs[0]["spec"], sort_keys=False))' "$1"; }
  prom_spec "$work/all.yaml" >"$work/all-rules.yaml"
  expect_ok "promtool check rules on the rendered PrometheusRule (overrides)" promtool check rules "$work/all-rules.yaml"
  prom_spec "$work/sameness.yaml" >"$work/pr/helm/lease-elector/files/alerts.yaml"
  expect_ok "promtool test rules on the rendered PrometheusRule" promtool test rules "$work/pr/tests/prometheus/alerts_test.yaml"
else
  echo "skip promtool checks of the PrometheusRule (no promtool; tests/prometheus/run.sh installs it)"
fi

# --- values and settings the chart must refuse
expect_fail "serviceMonitor + podMonitor together fail" "exclusive" \
  render "$work/x.yaml" --set serviceMonitor.enabled=true --set podMonitor.enabled=true
expect_fail "leaseDuration <= renewDeadline fails" "must be longer than election.renewDeadline" \
  render "$work/x.yaml" --set election.leaseDuration=10s
expect_fail "renewDeadline <= 1.2 x retryPeriod fails" "1.2 x election.retryPeriod" \
  render "$work/x.yaml" --set election.retryPeriod=9s
expect_fail "renewDeadline + gracePeriod >= leaseDuration with a workload fails" "must be shorter than election.leaseDuration" \
  render "$work/x.yaml" --set 'workload.command={sleep,1}' --set run.gracePeriod=5s
expect_ok "renewDeadline + gracePeriod >= leaseDuration without a workload renders" \
  render "$work/x.yaml" --set run.gracePeriod=5s
expect_fail "terminationGracePeriodSeconds <= renewDeadline fails" "terminationGracePeriodSeconds" \
  render "$work/x.yaml" --set terminationGracePeriodSeconds=10
expect_fail "readiness leader + PDB fails" "PodDisruptionBudget" \
  render "$work/x.yaml" --set http.readiness=leader
expect_fail "unknown top-level value fails (schema)" "additional properties" \
  render "$work/x.yaml" --set replicas=2
expect_fail "unknown election value fails (schema)" "additional properties" \
  render "$work/x.yaml" --set election.leaseDurationSeconds=15
expect_fail "a duration without unit fails (schema)" "leaseDuration" \
  render "$work/x.yaml" --set-string election.leaseDuration=15
expect_fail "bad readiness mode fails (schema)" "readiness" \
  render "$work/x.yaml" --set http.readiness=always
expect_fail "override of an unknown alert fails" "LeaseElectorNoLeader" \
  render "$work/x.yaml" --set prometheusRule.enabled=true --set prometheusRule.overrides.LeaseElectorTypo.for=1m
expect_fail "threshold on an alert without one fails" "has no threshold" \
  render "$work/x.yaml" --set prometheusRule.enabled=true --set prometheusRule.overrides.LeaseElectorNoLeader.threshold=2
expect_fail "kubeVersion >= 1.26 is enforced" "kubeVersion|incompatible" \
  render "$work/x.yaml" --kube-version 1.25.0
expect_ok "Kubernetes 1.26 renders" render "$work/x.yaml" --kube-version 1.26.0

# --- values that change the render
render "$work/t.yaml" --set terminationGracePeriodSeconds=45 --set image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
grep -q 'terminationGracePeriodSeconds: 45' "$work/t.yaml" && grep -q 'lease-elector@sha256:0123' "$work/t.yaml"
report $? "terminationGracePeriodSeconds and image.digest are used" "$work/t.yaml"
render "$work/t.yaml" --set election.renewDeadline=40s --set election.leaseDuration=1m
grep -q 'terminationGracePeriodSeconds: 50' "$work/t.yaml"
report $? "terminationGracePeriodSeconds defaults to renewDeadline + 10s when above 30s" "$work/t.yaml"
a="$(render /dev/stdout | grep checksum/config)"; b="$(render /dev/stdout --set log.level=debug | grep checksum/config)"
[ -n "$a" ] && [ "$a" != "$b" ]; report $? "checksum/config changes with the config"
render "$work/t.yaml" --set podDisruptionBudget.enabled=false --set rbac.create=false --set serviceAccount.create=false --set serviceAccount.name=existing --set service.enabled=false
! grep -qE '^kind: (PodDisruptionBudget|Role|RoleBinding|ServiceAccount|Service)$' "$work/t.yaml" && grep -q 'serviceAccountName: existing' "$work/t.yaml"
report $? "PDB, RBAC, ServiceAccount and Service can be turned off" "$work/t.yaml"

# --- NOTES.txt (helm renders it only on install; render a copy through tpl)
cp -rL "$chart" "$work/notes-chart"
cp "$chart/templates/NOTES.txt" "$work/notes-chart/files/notes.txt"
printf '%s\n' 'apiVersion: v1' 'kind: ConfigMap' 'metadata:' '  name: notes' 'data:' '  notes: |' \
  '    {{- tpl (.Files.Get "files/notes.txt") . | nindent 4 }}' >"$work/notes-chart/templates/zz-notes.yaml"
for values in "" "-f $here/values-all.yaml"; do
  # shellcheck disable=SC2086
  helm template rel "$work/notes-chart" -n ops $values --show-only templates/zz-notes.yaml >"$work/notes.txt" 2>"$work/out"
  grep -q 'kubectl get lease .* -n ops' "$work/notes.txt" && grep -q 'port-forward -n ops deploy/rel-lease-elector' "$work/notes.txt" \
    && grep -q '/metrics' "$work/notes.txt"
  report $? "NOTES.txt shows the lease holder command and a port-forward to /metrics (${values:-defaults})" "$work/notes.txt"
done
grep -q 'kubectl get lease my-lease -n ops' "$work/notes.txt" && grep -q 'The leader runs: /app/worker --flag a b' "$work/notes.txt"
report $? "NOTES.txt names election.leaseName and the workload" "$work/notes.txt"

# --- the dashboards/ symlink: helm package must follow it (one copy of the JSON)
[ -L "$chart/dashboards" ] && [ "$(readlink "$chart/dashboards")" = "../../dashboards" ]
report $? "helm/lease-elector/dashboards is a symlink to ../../dashboards"
if helm package "$chart" -d "$work/pkg" >"$work/out" 2>&1; then
  tgz="$(ls "$work"/pkg/lease-elector-*.tgz)"
  tar -xzf "$tgz" -C "$work/pkg" lease-elector/dashboards/lease-elector.json lease-elector/files/alerts.yaml 2>"$work/out"
  cmp -s "$work/pkg/lease-elector/dashboards/lease-elector.json" "$root/dashboards/lease-elector.json" \
    && [ ! -L "$work/pkg/lease-elector/dashboards" ]
  report $? "helm package contains dashboards/lease-elector.json (a real file, equal to the canonical one)" "$work/out"
  helm template rel "$tgz" -n ops --set dashboard.enabled=true 2>/dev/null | grep -q '"uid": "lease-elector"'
  report $? "the packaged chart renders the dashboard"
else
  report 1 "helm package" "$work/out"
fi

summary helm
