#!/usr/bin/env bash
# A real single-node Kubernetes cluster for the end-to-end tests, inside a network
# namespace of its own:
#
#   tests/node/node.sh up     # (re)starts everything; prints the env file on stdout
#   tests/node/node.sh down   # stops everything by PID, reverse order; idempotent
#   tests/node/node.sh logs   # tails of every component's log
#
# Components: etcd + kube-apiserver (the fixture's binaries, ServiceAccount admission on),
# kube-controller-manager, kube-scheduler, containerd (Debian) + runc + CNI bridge,
# kubelet, kube-proxy (iptables). No CoreDNS: nothing in the tests needs DNS.
#
# Network: everything runs in the netns $LE_NODE_NS (default le-node), created here. In
# it: lo, also holding the node IP 10.200.0.1 (the API server's advertise address, so the
# `kubernetes` Service gets an Endpoint and kube-proxy routes 10.0.0.1:443 to it), and
# the Pod bridge cni0 on 10.244.0.0/24 (Pods route only to the Service and node ranges).
# No device leads out of the namespace. Reach the cluster with
# `nsenter --net=/run/netns/$LE_NODE_NS -- kubectl --kubeconfig $DIR/admin.kubeconfig ...`.
#
# State: $LE_NODE_DIR (default /tmp/le-node): certificates, configs, containerd and
# kubelet roots, one log per component (logs/*.log) and pid files. `up` first removes
# whatever an earlier run left (processes by pid file and by cgroup, mounts under the
# directory, the netns).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
NS="${LE_NODE_NS:-le-node}"
DIR="${LE_NODE_DIR:-/tmp/le-node}"
FIXTURE_BIN="${K8S_FIXTURE_BIN:-$repo/target/k8s-fixture/bin}"
NODE_BIN="${K8S_NODE_BIN:-$repo/target/k8s-node/bin}"
NODE_IP=10.200.0.1
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.0.0.0/24
NODE_NAME=le-node
APISERVER_PORT=6443
NSENTER=(nsenter "--net=/run/netns/$NS" --)
CTR_SOCK="$DIR/containerd/containerd.sock"
t_start=$SECONDS

log() { echo "node: [$((SECONDS - t_start)) s] $*" >&2; }

# ---------------------------------------------------------------- teardown
kill_pid() { # kill_pid PID NAME: TERM, wait up to 10 s, KILL
  local pid="$1" name="$2" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  log "$name ($pid) did not stop on TERM: KILL"
  kill -KILL "$pid" 2>/dev/null || true
}

stop_component() { # by the pid file this script wrote
  local name="$1" f="$DIR/pids/$1.pid"
  [ -f "$f" ] || return 0
  local pid
  pid="$(cat "$f")"
  # only if it is still the process we started (its command line names our directory)
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$DIR"; then
    kill_pid "$pid" "$name"
  fi
  rm -f "$f"
}

pids_of_our_containers() {
  # container processes live in the kubelet's cgroups of this node ("kubepods"), and the
  # containerd shims name our containerd socket on their command line
  local d p
  for d in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods; do
    [ -d "$d" ] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' 2>/dev/null < "$p/cmdline" | grep -q -- "-address $CTR_SOCK"; then
      basename "$p"
    fi
  done
}

down() {
  [ -d "$DIR" ] || { ip netns del "$NS" 2>/dev/null || true; return 0; }
  log "stopping (reverse order)"
  stop_component kube-proxy
  stop_component kubelet
  if [ -S "$CTR_SOCK" ] && [ -f "$DIR/pids/containerd.pid" ]; then
    # stop the Pods' containers while containerd still knows them
    local t
    for t in $(ctr -a "$CTR_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr -a "$CTR_SOCK" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
  fi
  stop_component containerd
  local p
  for p in $(pids_of_our_containers | sort -u); do kill -KILL "$p" 2>/dev/null || true; done
  stop_component kube-scheduler
  stop_component kube-controller-manager
  stop_component kube-apiserver
  stop_component etcd
  # mounts under our directory (overlay snapshots, Pod volumes, Pod netns), deepest first
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$DIR/" | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  ip netns del "$NS" 2>/dev/null || true
  # the kubelet's symlinks to our Pod logs (its directory for them is not configurable)
  find /var/log/containers /var/log/pods -maxdepth 1 -lname "$DIR/*" -delete 2>/dev/null || true
  # cgroups of the Pods of an earlier run (empty now)
  local c
  for c in /sys/fs/cgroup/*/kubepods; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  log "stopped"
}

logs() {
  local f
  for f in "$DIR"/logs/*.log; do
    [ -f "$f" ] || continue
    echo "----- $(basename "$f") (last 25 lines)"
    tail -n 25 "$f"
  done
}

# ---------------------------------------------------------------- start-up
start() { # start NAME CMD...: in the netns, log to logs/NAME.log, pid to pids/NAME.pid
  local name="$1"
  shift
  setsid "${NSENTER[@]}" "$@" >"$DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$DIR/pids/$name.pid"
}

wait_for() { # wait_for WHAT SECONDS CMD...
  local what="$1" secs="$2" i
  shift 2
  for i in $(seq $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then log "$what"; return 0; fi
    sleep 0.1
  done
  log "timed out waiting for: $what"
  logs >&2
  return 1
}

gen_certs() {
  local pki="$DIR/pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=le-node-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:10.0.0.1,IP:%s,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost\nextendedKeyUsage=serverAuth\n' "$NODE_IP" > "$pki/san.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/san.ext" -out "$pki/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  ADMIN_TOKEN="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  echo "$ADMIN_TOKEN,admin,admin-uid,\"system:masters\"" > "$pki/tokens.csv"
  cat > "$DIR/admin.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: le-node
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    token: $ADMIN_TOKEN
contexts:
- name: le-node
  context: {cluster: le-node, user: admin, namespace: default}
current-context: le-node
EOF
}

write_configs() {
  mkdir -p "$DIR/cni/net.d" "$DIR/cni/ipam" "$DIR/containerd" "$DIR/kubelet" "$DIR/pod-logs"
  cat > "$DIR/containerd/config.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$CTR_SOCK"
[ttrpc]
  address = "$DIR/containerd/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/le-node-pause:1"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
EOF
  cat > "$DIR/cni/net.d/10-le-node.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "le-node",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "$SVC_CIDR"}, {"dst": "10.200.0.0/24"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  echo "nameserver 10.0.0.10" > "$DIR/resolv.conf"
  cat > "$DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
enforceNodeAllocatable: []
failSwapOn: false
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
protectKernelDefaults: false
makeIPTablesUtilChains: false
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
resolvConf: $DIR/resolv.conf
clusterDNS: [10.0.0.10]
clusterDomain: cluster.local
podLogsDir: $DIR/pod-logs
containerRuntimeEndpoint: unix://$CTR_SOCK
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 10s
nodeStatusUpdateFrequency: 5s
EOF
  cat > "$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $DIR/admin.kubeconfig
hostnameOverride: $NODE_NAME
clusterCIDR: 10.244.0.0/16
iptables:
  masqueradeAll: true
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
}

kubectl_() { "${NSENTER[@]}" kubectl --kubeconfig "$DIR/admin.kubeconfig" "$@"; }

node_ready() {
  [ "$(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

up() {
  for b in "$FIXTURE_BIN/etcd" "$FIXTURE_BIN/kube-apiserver" "$NODE_BIN/kubelet" "$NODE_BIN/kube-proxy" \
           "$NODE_BIN/kube-scheduler" "$NODE_BIN/kube-controller-manager" "$NODE_BIN/pause-image.tar"; do
    [ -e "$b" ] || { echo "node: missing $b (run tests/k8s-fixture/build.sh and tests/node/build.sh)" >&2; exit 1; }
  done
  for t in containerd runc ctr iptables nsenter openssl /usr/lib/cni/bridge; do
    command -v "$t" >/dev/null || [ -x "$t" ] || { echo "node: missing $t (apt-get install containerd runc containernetworking-plugins iptables)" >&2; exit 1; }
  done
  down
  rm -rf "$DIR"
  mkdir -p "$DIR/logs" "$DIR/pids"
  log "netns $NS"
  ip netns add "$NS"
  "${NSENTER[@]}" ip link set lo up
  # the node IP lives on lo (no device leads out of the namespace); Pods reach it, and
  # the Service IP that kube-proxy DNATs to it, through their bridge's gateway
  "${NSENTER[@]}" ip addr add "$NODE_IP/32" dev lo
  "${NSENTER[@]}" sysctl -qw net.ipv4.ip_forward=1
  gen_certs
  write_configs

  log "etcd"
  start etcd "$FIXTURE_BIN/etcd" --name=le-node --data-dir="$DIR/etcd" \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=le-node=http://127.0.0.1:2380 --unsafe-no-fsync --log-outputs=stderr --log-level=warn
  log "kube-apiserver"
  start kube-apiserver "$FIXTURE_BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
    --secure-port=$APISERVER_PORT --bind-address=0.0.0.0 --advertise-address=$NODE_IP \
    --cert-dir="$DIR/pki" --tls-cert-file="$DIR/pki/apiserver.crt" --tls-private-key-file="$DIR/pki/apiserver.key" \
    --service-cluster-ip-range=$SVC_CIDR --allow-privileged=true --authorization-mode=RBAC \
    --token-auth-file="$DIR/pki/tokens.csv" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$DIR/pki/sa.pub" --service-account-signing-key-file="$DIR/pki/sa.key" \
    --kubelet-preferred-address-types=InternalIP,Hostname
  wait_for "kube-apiserver ready" 120 kubectl_ get --raw /readyz
  log "kube-controller-manager, kube-scheduler, containerd"
  start kube-controller-manager "$NODE_BIN/kube-controller-manager" --kubeconfig="$DIR/admin.kubeconfig" \
    --leader-elect=false --secure-port=0 --use-service-account-credentials=false \
    --service-account-private-key-file="$DIR/pki/sa.key" --root-ca-file="$DIR/pki/ca.crt"
  start kube-scheduler "$NODE_BIN/kube-scheduler" --kubeconfig="$DIR/admin.kubeconfig" \
    --leader-elect=false --secure-port=0
  start containerd containerd --config "$DIR/containerd/config.toml"
  wait_for "containerd ready" 30 ctr -a "$CTR_SOCK" version
  log "images into containerd"
  ctr -a "$CTR_SOCK" -n k8s.io images import "$NODE_BIN/pause-image.tar" >/dev/null
  if [ -n "${LE_NODE_IMAGES:-}" ]; then
    podman save --quiet --format docker-archive -m -o "$DIR/images.tar" $LE_NODE_IMAGES
    ctr -a "$CTR_SOCK" -n k8s.io images import "$DIR/images.tar" >/dev/null
    rm -f "$DIR/images.tar"
  fi
  log "kubelet, kube-proxy"
  start kubelet "$NODE_BIN/kubelet" --config="$DIR/kubelet/config.yaml" --kubeconfig="$DIR/admin.kubeconfig" \
    --root-dir="$DIR/kubelet" --hostname-override=$NODE_NAME --node-ip=$NODE_IP \
    --volume-plugin-dir="$DIR/kubelet/volume-plugins" --cert-dir="$DIR/kubelet/pki"
  start kube-proxy "$NODE_BIN/kube-proxy" --config="$DIR/kube-proxy.yaml"
  wait_for "node Ready" 90 node_ready
  wait_for "default ServiceAccount and kube-root-ca.crt" 60 \
    bash -c "$(declare -f kubectl_); NSENTER=(${NSENTER[*]}); DIR=$DIR; kubectl_ get sa default && kubectl_ get configmap kube-root-ca.crt"
  cat > "$DIR/env" <<EOF
LE_NODE_NS=$NS
LE_NODE_DIR=$DIR
KUBECONFIG=$DIR/admin.kubeconfig
LE_NODE_CTR_SOCK=$CTR_SOCK
LE_NODE_NAME=$NODE_NAME
EOF
  log "up: node $NODE_NAME Ready (${SECONDS}s since start)"
  echo "$DIR/env"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  logs) logs ;;
  *) echo "usage: $0 up|down|logs" >&2; exit 2 ;;
esac
