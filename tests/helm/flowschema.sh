#!/usr/bin/env bash
# The chart's optional FlowSchema, proven on a real API server: with
# flowSchema.enabled the ServiceAccount's Lease requests are classified into the
# `leader-election` priority level, its other requests are not, and the real
# daemon's renewals are dispatched there (the API server's own APF metrics).
#
#   tests/helm/flowschema.sh KUBECONFIG [LEASE_ELECTOR_BIN]
#
# KUBECONFIG: an admin kubeconfig (e.g. the k8s-fixture's admin.kubeconfig).
# LEASE_ELECTOR_BIN defaults to target/debug/lease-elector. Namespace le-apf
# (E2E_NAMESPACE), release le-apf. The last line is "flowschema: N passed, N failed".
#
# Evidence, per request: the API server names the FlowSchema and priority level
# that classified a request in the response headers X-Kubernetes-PF-FlowSchema-UID
# and X-Kubernetes-PF-PriorityLevel-UID; per flow, it counts dispatched requests
# in apiserver_flowcontrol_dispatched_requests_total{flow_schema,priority_level}.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
chart="$root/helm/lease-elector"
if [ $# -lt 1 ] || [ ! -r "$1" ]; then echo "usage: $0 KUBECONFIG [LEASE_ELECTOR_BIN]" >&2; exit 2; fi
KUBECONFIG="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
export KUBECONFIG
bin="${2:-${CARGO_TARGET_DIR:-$root/target}/debug/lease-elector}"
ns="${E2E_NAMESPACE:-le-apf}"
rel=le-apf
full="$rel-lease-elector"          # fullname = Lease = ServiceAccount
fs="$ns-$full"                      # the FlowSchema: cluster-scoped, namespace in its name
work="$(mktemp -d)"
daemon_pid=""
gopath="$(go env GOPATH 2>/dev/null || echo "$HOME/go")"
export PATH="$gopath/bin:$PATH"
command -v helm >/dev/null 2>&1 || "$here/install-helm.sh" >&2 || exit 1

. "$root/tests/toolkit/checks.sh"  # report, step, summary
k() { kubectl --request-timeout=30s "$@"; }
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  helm uninstall "$rel" -n "$ns" >/dev/null 2>&1
  k delete lease -n "$ns" "$full" --ignore-not-found >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
cleanup_before() { helm uninstall "$rel" -n "$ns" >/dev/null 2>&1; k delete lease -n "$ns" "$full" --ignore-not-found >/dev/null 2>&1; }

k get ns "$ns" >/dev/null 2>&1 || k create ns "$ns" >/dev/null
cleanup_before
helm install "$rel" "$chart" -n "$ns" --set flowSchema.enabled=true --set serviceMonitor.enabled=false \
  >"$work/out" 2>&1
report $? "helm install with flowSchema.enabled=true" "$work/out"

fs_uid="$(k get flowschema "$fs" -o jsonpath='{.metadata.uid}' 2>"$work/out")"
[ -n "$fs_uid" ]; report $? "the FlowSchema $fs exists" "$work/out"
pl_uid="$(k get prioritylevelconfiguration leader-election -o jsonpath='{.metadata.uid}' 2>"$work/out")"
[ -n "$pl_uid" ]; report $? "the built-in priority level leader-election exists" "$work/out"

# A bearer-token kubeconfig for the chart's ServiceAccount (no kubelet here, so
# the daemon runs on the host with the Pod's identity).
token="$(k create token "$full" -n "$ns" --duration=10m 2>"$work/out")"
[ -n "$token" ]; report $? "a token of the chart's ServiceAccount" "$work/out"
server="$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')"
kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' \
  | base64 -d >"$work/ca.crt"
cat >"$work/sa.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "$server", certificate-authority: "$work/ca.crt"}}]
users: [{name: sa, user: {token: "$token"}}]
contexts: [{name: c, context: {cluster: c, user: sa, namespace: "$ns"}}]
current-context: c
KC

# The headers name what classified the request.
pf_headers() { # pf_headers PATH: prints "FLOWSCHEMA_UID PRIORITY_LEVEL_UID"
  curl -s -o /dev/null -D - --cacert "$work/ca.crt" -H "Authorization: Bearer $token" "$server$1" \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="x-kubernetes-pf-flowschema-uid"{f=$2} tolower($1)=="x-kubernetes-pf-prioritylevel-uid"{p=$2} END{print f, p}'
}
read -r got_fs got_pl < <(pf_headers "/apis/coordination.k8s.io/v1/namespaces/$ns/leases/$full")
echo "lease GET: flowschema=$got_fs prioritylevel=$got_pl" >"$work/out"
[ "$got_fs" = "$fs_uid" ] && [ "$got_pl" = "$pl_uid" ]
report $? "a Lease request of the ServiceAccount is classified by the FlowSchema into leader-election" "$work/out"
read -r got_fs got_pl < <(pf_headers "/api/v1/namespaces/$ns/events")
echo "events LIST: flowschema=$got_fs prioritylevel=$got_pl" >"$work/out"
[ -n "$got_pl" ] && [ "$got_fs" != "$fs_uid" ] && [ "$got_pl" != "$pl_uid" ]
report $? "its other requests are not (they stay where APF puts any ServiceAccount)" "$work/out"

# The real daemon, as that ServiceAccount: its renewals land in leader-election.
dispatched() { # requests dispatched for the FlowSchema into leader-election, per the API server
  k get --raw /metrics 2>/dev/null | awk -v fs="$fs" '
    /^apiserver_flowcontrol_dispatched_requests_total\{/ && index($0, "flow_schema=\"" fs "\"") && index($0, "priority_level=\"leader-election\"") { n += $NF }
    END { print n + 0 }'
}
before="$(dispatched)"
# A clean environment: no stray LEASE_ELECTOR_* setting of the caller's reaches it.
env -i PATH="$PATH" KUBECONFIG="$work/sa.kubeconfig" "$bin" --lease "$full" --namespace "$ns" --identity apf-test \
  --lease-duration 3s --renew-deadline 2s --retry-period 500ms --listen 127.0.0.1:0 \
  >"$work/daemon.log" 2>&1 &
daemon_pid=$!
sleep 4
kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; daemon_pid=""
after="$(dispatched)"
{ echo "dispatched into leader-election for $fs: before=$before after=$after"; tail -n 5 "$work/daemon.log"; } >"$work/out"
[ "$after" -ge $((before + 5)) ]
report $? "the daemon's Lease requests are dispatched in the leader-election priority level ($before -> $after)" "$work/out"

summary flowschema
