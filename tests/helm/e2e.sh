#!/usr/bin/env bash
# Installs the chart into a real API server and checks what its ServiceAccount may do.
#
#   tests/helm/e2e.sh KUBECONFIG
#
# KUBECONFIG: an admin kubeconfig (e.g. the k8s-fixture's admin.kubeconfig; token or
# certificate credentials). No kubelet is needed: Pods are never expected to run.
# Namespace le-helm (E2E_NAMESPACE), release le (E2E_RELEASE). The namespace is kept
# afterwards (without a controller-manager a deleted namespace never finishes
# terminating); the releases and Leases are removed, so the script can run again.
#
# 1. `helm install` with default values (ServiceMonitor off: no Prometheus Operator
#    CRDs here); the API server validates every object.
# 2. The objects exist; the Role is restricted to the Lease.
# 3. A token of the chart's ServiceAccount (`kubectl create token`): `kubectl auth
#    can-i` and real requests with it: get/update/patch/watch the Lease, create
#    leases and events; not: update or read another Lease, list leases, delete,
#    anything on pods, anything cluster-wide.
# 4. A second release with run.labelPod adds get/patch on pods, still nothing more.
# 5. A server-side dry run of the all-features values (minus the CRD kinds).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
chart="$root/helm/lease-elector"
if [ $# -ne 1 ] || [ ! -r "$1" ]; then echo "usage: $0 KUBECONFIG" >&2; exit 2; fi
KUBECONFIG="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
export KUBECONFIG
ns="${E2E_NAMESPACE:-le-helm}"
rel="${E2E_RELEASE:-le}"
rel2="${rel}-pods"
full="$rel-lease-elector"        # fullname = Lease = ServiceAccount = Role
full2="$rel2-lease-elector"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

gopath="$(go env GOPATH 2>/dev/null || echo "$HOME/go")"
export PATH="$gopath/bin:$PATH"
command -v helm >/dev/null 2>&1 || "$here/install-helm.sh" >&2 || exit 1
command -v kubectl >/dev/null 2>&1 || { echo "kubectl not found" >&2; exit 1; }

. "$root/tests/toolkit/checks.sh"  # report, step, summary
run() { local name="$1"; shift; "$@" >"$work/out" 2>&1; report $? "$name" "$work/out"; }
k() { kubectl --request-timeout=30s "$@"; }
helm_q() { helm "$@" 2> >(grep -v 'found symbolic link in path' >&2); }

cleanup() {
  helm_q uninstall "$rel" -n "$ns" >/dev/null 2>&1
  helm_q uninstall "$rel2" -n "$ns" >/dev/null 2>&1
  k delete lease -n "$ns" "$full" "$full2" e2e-other --ignore-not-found >/dev/null 2>&1
  k delete events -n "$ns" --field-selector reason=E2ETest --ignore-not-found >/dev/null 2>&1
}

run "API server reachable" k version
phase="$(k get ns "$ns" -o jsonpath='{.status.phase}' 2>/dev/null)"
if [ "$phase" = Terminating ]; then
  echo "namespace $ns is terminating (no namespace controller?); set E2E_NAMESPACE" >&2; exit 1
fi
[ -n "$phase" ] || k create namespace "$ns" >/dev/null
cleanup

# --- 1. install
run "helm install (defaults, ServiceMonitor off)" helm_q install "$rel" "$chart" -n "$ns" --set serviceMonitor.enabled=false
run "helm status deployed" bash -c "helm status '$rel' -n '$ns' -o json | grep -q '\"status\":\"deployed\"'"

# --- 2. objects
for obj in deployment/$full configmap/$full serviceaccount/$full role/$full rolebinding/$full \
           service/$full poddisruptionbudget/$full; do
  run "object $obj exists" k get -n "$ns" "$obj"
done
run "no ClusterRole/ClusterRoleBinding from the chart" bash -c \
  "! kubectl get clusterrole,clusterrolebinding -l app.kubernetes.io/instance='$rel' -o name | grep ."
run "ConfigMap config.toml names the Lease" bash -c \
  "kubectl get cm '$full' -n '$ns' -o jsonpath='{.data.config\\.toml}' | grep -qx 'lease = \"$full\"'"
run "Role restricts the Lease rule by resourceNames" bash -c \
  "kubectl get role '$full' -n '$ns' -o jsonpath='{.rules[0].resourceNames[0]}' | grep -qx '$full'"

# --- 3. the ServiceAccount's token
if ! token="$(k create token "$full" -n "$ns" --duration=10m 2>"$work/out")"; then
  report 1 "kubectl create token $full" "$work/out"
  summary "helm e2e"; cleanup; exit 1
fi
report 0 "kubectl create token $full"
# --token overrides the kubeconfig's credentials; a client certificate in the kubeconfig
# would still authenticate first, so build a kubeconfig with the token only
server="$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')"
k config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$work/ca.crt" 2>/dev/null
sa_kc="$work/sa.kubeconfig"
if [ -s "$work/ca.crt" ]; then
  KUBECONFIG="$sa_kc" kubectl config set-cluster e2e --server="$server" --certificate-authority="$work/ca.crt" --embed-certs >/dev/null
else
  ca_file="$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')"
  if [ -n "$ca_file" ]; then
    KUBECONFIG="$sa_kc" kubectl config set-cluster e2e --server="$server" --certificate-authority="$ca_file" --embed-certs >/dev/null
  else
    KUBECONFIG="$sa_kc" kubectl config set-cluster e2e --server="$server" --insecure-skip-tls-verify=true >/dev/null
  fi
fi
KUBECONFIG="$sa_kc" kubectl config set-credentials sa --token="$token" >/dev/null
KUBECONFIG="$sa_kc" kubectl config set-context e2e --cluster=e2e --user=sa --namespace="$ns" >/dev/null
KUBECONFIG="$sa_kc" kubectl config use-context e2e >/dev/null
sa() { kubectl --kubeconfig="$sa_kc" --request-timeout=30s "$@"; }

who="$(sa auth whoami -o jsonpath='{.status.userInfo.username}' 2>/dev/null || true)"
[ "$who" = "system:serviceaccount:$ns:$full" ]; report $? "token authenticates as system:serviceaccount:$ns:$full (got '$who')"

can() { # can yes|no VERB RESOURCE [ARGS...]
  local want="$1"; shift
  local got; got="$(sa auth can-i "$@" 2>/dev/null)"
  [ "$got" = "$want" ]; report $? "can-i $* -> $want (got ${got:-error})"
}
for verb in get update patch watch list; do can yes "$verb" "leases.coordination.k8s.io/$full" -n "$ns"; done
can yes create leases.coordination.k8s.io -n "$ns"
can yes create events -n "$ns"
can yes patch events -n "$ns"
can no update leases.coordination.k8s.io/e2e-other -n "$ns"
can no get leases.coordination.k8s.io/e2e-other -n "$ns"
can no list leases.coordination.k8s.io -n "$ns"
can no delete "leases.coordination.k8s.io/$full" -n "$ns"
can no create leases.coordination.k8s.io -n default
can no update "leases.coordination.k8s.io/$full" -n default
can no get pods -n "$ns"
can no patch pods -n "$ns"
can no list pods --all-namespaces
can no list leases.coordination.k8s.io --all-namespaces
can no get secrets -n "$ns"
can no create pods -n "$ns"

# real requests with the token
lease_yaml() { # lease_yaml NAME HOLDER
  printf 'apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  holderIdentity: %s\n  leaseDurationSeconds: 15\n' "$1" "$ns" "$2"
}
lease_yaml "$full" e2e-a >"$work/lease.yaml"
run "SA creates the Lease" sa create -f "$work/lease.yaml"
run "SA gets the Lease" sa get lease "$full" -n "$ns"
run "SA updates the Lease (PUT)" bash -c "kubectl --kubeconfig='$sa_kc' get lease '$full' -o json | sed 's/\"e2e-a\"/\"e2e-b\"/' | kubectl --kubeconfig='$sa_kc' replace -f -"
run "SA patches the Lease" sa patch lease "$full" -n "$ns" --type merge -p '{"spec":{"holderIdentity":"e2e-c"}}'
run "the Lease holder is e2e-c" bash -c "[ \"\$(kubectl get lease '$full' -n '$ns' -o jsonpath='{.spec.holderIdentity}')\" = e2e-c ]"
# kubectl get NAME --watch lists and watches with fieldSelector=metadata.name=NAME,
# which the resourceNames rule allows; stop it after a few seconds
timeout 6 kubectl --kubeconfig="$sa_kc" get lease "$full" -n "$ns" --watch >"$work/watch" 2>&1
rc=$?
[ "$rc" = 124 ] && grep -q "$full" "$work/watch" && ! grep -qi forbidden "$work/watch"
report $? "SA watches the Lease by name (list+watch with fieldSelector)" "$work/watch"
run "SA lists leases: forbidden" bash -c "kubectl --kubeconfig='$sa_kc' get leases -n '$ns' 2>&1 | grep -qi forbidden"
lease_yaml e2e-other e2e-a >"$work/other.yaml"
run "SA creates another Lease (create is not restricted by name)" sa create -f "$work/other.yaml"
run "SA updates another Lease: forbidden" bash -c "kubectl --kubeconfig='$sa_kc' patch lease e2e-other -n '$ns' --type merge -p '{\"spec\":{\"holderIdentity\":\"x\"}}' 2>&1 | grep -qi forbidden"
run "SA deletes its Lease: forbidden" bash -c "kubectl --kubeconfig='$sa_kc' delete lease '$full' -n '$ns' 2>&1 | grep -qi forbidden"
cat >"$work/event.yaml" <<EOF
apiVersion: v1
kind: Event
metadata:
  generateName: $full-
  namespace: $ns
involvedObject:
  apiVersion: coordination.k8s.io/v1
  kind: Lease
  name: $full
  namespace: $ns
reason: E2ETest
message: e2e event from the chart's ServiceAccount
type: Normal
source:
  component: lease-elector-e2e
EOF
run "SA creates an Event on the Lease" sa create -f "$work/event.yaml"
run "SA lists pods cluster-wide: forbidden" bash -c "kubectl --kubeconfig='$sa_kc' get pods -A 2>&1 | grep -qi forbidden"

# --- 4. run.labelPod adds pods get/patch in the namespace only
run "helm install with run.labelPod and a workload" helm_q install "$rel2" "$chart" -n "$ns" \
  --set run.labelPod=true --set 'workload.command={sleep,infinity}' --set podDisruptionBudget.enabled=false
if token2="$(k create token "$full2" -n "$ns" --duration=10m 2>"$work/out")"; then
  KUBECONFIG="$sa_kc" kubectl config set-credentials sa --token="$token2" >/dev/null
  can yes get pods -n "$ns"
  can yes patch pods -n "$ns"
  can no list pods -n "$ns"
  can no delete pods -n "$ns"
  can no list pods --all-namespaces
  can yes update "leases.coordination.k8s.io/$full2" -n "$ns"
  can no update "leases.coordination.k8s.io/$full" -n "$ns"
else
  report 1 "kubectl create token $full2" "$work/out"
fi

# --- 5. server-side dry run of (almost) everything
run "helm install --dry-run=server with values-all (without the CRD kinds)" helm_q install "$rel-dry" "$chart" -n "$ns" \
  --dry-run=server -f "$here/values-all.yaml" --set serviceMonitor.enabled=false --set prometheusRule.enabled=false \
  --set dashboard.namespace=

cleanup
summary "helm e2e"
