#!/usr/bin/env bash
# Starts a real single-node Kubernetes cluster built from source, for tests that need Pods: the
# control plane of hack/controlplane/up.sh (etcd, kube-apiserver) served on the Pod bridge, plus
# kube-controller-manager, kube-scheduler, kube-proxy (iptables mode) and a kubelet on containerd +
# runc + the CNI bridge plugin from Debian (installed with apt-get if missing). Idempotent: a running
# cluster is reused, a broken one is removed (hack/cluster/down.sh) and started again.
#
#   State dir:  ${GATEHOUSE_CLUSTER_DIR:-<repo root>/target/cluster}; everything lives under it:
#               the control plane (controlplane/), containerd's root, state and socket (run/),
#               the kubelet's root and certificate dirs, CNI config and IP allocations, logs, pids.
#   Kubeconfig: <state>/kubeconfig: the control plane's contexts (admin, alice, bob, carol, dave,
#               erin, mallory, frank in payments-oncall), against https://10.88.0.1:<port>.
#   Env file:   <state>/env (KUBECONFIG, APISERVER_URL, the containerd socket, the node's name; source it).
#   Images:     no registry is reachable: Pods use images imported with hack/cluster/load-image.sh
#               (pull policy IfNotPresent or Never); the sandbox image is built here (build-images.sh).
#
# The network: a bridge of our own, gatehouse0 (10.88.0.1/16), which Pods attach to; kube-apiserver
# and the kubelet listen on 10.88.0.1 (never on an outside interface), and kube-proxy routes the
# "kubernetes" Service's ClusterIP (10.0.0.1) there, so Pods use the in-cluster configuration. A
# FORWARD rule drops anything Pods send outside their network. One cluster per machine: kube-proxy's
# iptables chains and the bridge are the machine's.
#
# Each component uses its own identity (client certificates of the control plane's CA):
# system:kube-controller-manager (one ServiceAccount per controller), system:kube-scheduler,
# system:node:gatehouse-node (Node authorization), system:kube-proxy. Needs root.
#
# stdout carries only "export KUBECONFIG=<path>", so `eval "$(hack/cluster/up.sh)"` works; everything
# else goes to stderr. Stop with hack/cluster/down.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/cluster/lib.sh
source "$here/lib.sh"
ready_timeout=${GATEHOUSE_CLUSTER_TIMEOUT:-180}

# The control plane of this cluster: up.sh's knobs for a control plane that nodes join.
controlplane_up() {
  GATEHOUSE_CONTROLPLANE_DIR=$controlplane_state GATEHOUSE_CONTROLPLANE_ADDRESS=$node_ip \
    GATEHOUSE_CONTROLPLANE_NODES=true bash "$cluster_root/hack/controlplane/up.sh" >/dev/null
}

admin_curl() { # admin_curl <path> [curl args...]: a GET as admin
  local path=$1
  shift
  # shellcheck disable=SC1091 # written at start
  (source "$controlplane_state/env" && curl -sf --max-time 5 --cacert "$APISERVER_CA_FILE" \
    -H "Authorization: Bearer $(<"$controlplane_state/admin.token")" "$@" "$APISERVER_URL$path")
}

node_ready() {
  admin_curl "/api/v1/nodes/$node_name" | python3 -c '
import json, sys
node = json.load(sys.stdin)
ready = [c for c in node.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
sys.exit(0 if ready and ready[0]["status"] == "True" else 1)' 2>/dev/null
}

finish() {
  log "kubeconfig: $state/kubeconfig (contexts: admin alice bob carol dave erin mallory frank; current: admin)"
  log "env file:   $state/env; load images with hack/cluster/load-image.sh <docker-archive.tar>"
  echo "export KUBECONFIG=$state/kubeconfig"
}

# Read-only: every process runs, the API server answers and the node is Ready.
running_and_ready() {
  local name
  for name in "${node_components[@]}"; do pid_alive "$name" || return 1; done
  [[ -s $state/kubeconfig && -s $state/env && -s $controlplane_state/env ]] || return 1
  admin_curl /readyz >/dev/null && node_ready
}

# --- Already running? (fast path, read-only, without the lock) --------------------------------------
if running_and_ready; then
  log "already running: node $node_name Ready (pids in $state/*.pid)"
  finish
  exit 0
fi

[[ $(id -u) == 0 ]] || die "needs root (network bridge, iptables, mounts, containers): run as root"
# Socket paths are limited to 108 bytes; the kubelet's deepest is under <root-dir>/plugins_registry.
((${#state} <= 60)) || die "state dir $state is too long for unix sockets under it (max 60 characters): set GATEHOUSE_CLUSTER_DIR to a shorter path"
owner=$(cat "/sys/class/net/$bridge/ifalias" 2>/dev/null || true)
if [[ -e /sys/class/net/$bridge && $owner != "$state" ]]; then
  die "bridge $bridge belongs to another cluster (${owner:-unknown owner}); stop it first: GATEHOUSE_CLUSTER_DIR=$owner bash hack/cluster/down.sh"
fi

# Serialise concurrent up.sh/down.sh runs; the lock lives beside the state dir, which down.sh removes.
mkdir -p "$(dirname "$state")"
exec {lock_fd}>"$state.lock"
flock "$lock_fd"
export _GATEHOUSE_CLUSTER_LOCKED=1 # down.sh, called below, must not wait for our own lock

if [[ -e $state ]]; then
  if [[ ! -e $state/$marker ]] && [[ -n $(ls -A "$state") ]]; then
    die "$state exists, is not empty and was not created by this script; refusing to touch it"
  fi
  if running_and_ready; then # started while we waited
    finish
    exit 0
  fi
  log "stale or partial cluster in $state; removing it first"
  bash "$here/down.sh"
fi

# --- Prerequisites --------------------------------------------------------------------------------
missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || missing+=(iptables)
command -v gcc >/dev/null || missing+=(gcc libc6-dev) # the pause image
for tool in openssl curl python3 ip:iproute2 flock:util-linux setsid:util-linux mount umount:mount; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]} with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${missing[@]}" >&2 \
    || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2; } \
    || die "apt-get could not install ${missing[*]}"
fi

# cgroup v1 with the hybrid "unified" mount here; the kubelet settings below are the ones that run.
[[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] || die "no cgroup filesystem under /sys/fs/cgroup"

start=$EPOCHREALTIME
elapsed() { awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

bins=$(bash "$cluster_root/hack/controlplane/build.sh" kube-controller-manager kube-scheduler kube-proxy kubelet)
bin() { sed -n "s/^$1=//p" <<<"$bins"; }
kube_controller_manager=$(bin KUBE_CONTROLLER_MANAGER)
kube_scheduler=$(bin KUBE_SCHEDULER)
kube_proxy=$(bin KUBE_PROXY)
kubelet=$(bin KUBELET)
for b in "$kube_controller_manager" "$kube_scheduler" "$kube_proxy" "$kubelet"; do
  [[ -x $b ]] || die "build.sh did not print usable binaries: $bins"
done
images=$(bash "$here/build-images.sh" pause)
pause_tar=$(sed -n 's/^PAUSE=//p' <<<"$images")
pause_ref=$(sed -n 's/^PAUSE_REF=//p' <<<"$images")
log "binaries and the pause image ready after $(elapsed)s"

# --- From here on, a failure removes whatever we started (logs are kept in <state>.failed). --------
started_ok=false
on_exit() {
  $started_ok && return
  log "start failed; removing the partial cluster (its logs are kept in $state.failed/)"
  rm -rf -- "$state.failed"
  mkdir -p "$state.failed"
  cp "$state"/*.log "$controlplane_state"/*.log "$state.failed/" 2>/dev/null || true
  bash "$here/down.sh" || true
  # The last line is the reason (make test-cluster shows it in its banner).
  log "error: ${failure:-start failed (see above)}; logs in $state.failed/"
}
trap on_exit EXIT

umask 022
mkdir -p "$state"
touch "$state/$marker"
cd "$state"
mkdir -p run pki cni/net.d cni/networks containerd kubelet kubelet-pki pod-logs
echo "$kube_proxy" >kube-proxy.path # for down.sh's kube-proxy --cleanup

if [[ ! -s sysctl.saved ]]; then
  for s in "${saved_sysctls[@]}"; do echo "$s $(<"/proc/sys/$s")"; done >sysctl.saved
fi

# --- The Pod bridge, and nothing leaves the Pod network ---------------------------------------------
if [[ ! -e /sys/class/net/$bridge ]]; then
  ip link add "$bridge" type bridge
  ip link set "$bridge" alias "$state"
fi
ip addr replace "$node_ip/${pod_cidr#*/}" dev "$bridge"
ip link set "$bridge" up
# ClusterIPs are routed onto the bridge too: kube-proxy's DNAT rules take them to their endpoints,
# and traffic to one it has not programmed yet stays here instead of following the default route.
ip route replace "$service_cidr" dev "$bridge" src "$node_ip"
# The bridge plugin turns on ip_forward for the gateway; Pods must still reach nothing outside.
guard_comment="gatehouse cluster $state"
if ! iptables -C FORWARD -s "$pod_cidr" ! -d "$pod_cidr" -m comment --comment "$guard_comment" -j DROP 2>/dev/null; then
  iptables -I FORWARD 1 -s "$pod_cidr" ! -d "$pod_cidr" -m comment --comment "$guard_comment" -j DROP
fi

# --- Control plane on the bridge address -------------------------------------------------------------
controlplane_up || die "hack/controlplane/up.sh failed (see above)"
# shellcheck disable=SC1091
source "$controlplane_state/env"
ca_crt=$controlplane_state/ca.crt
ca_key=$controlplane_state/ca.key
log "control plane ready at $APISERVER_URL after $(elapsed)s"

# --- Component identities: client certificates and kubeconfigs -------------------------------------
identity() { # identity <file name> <CN> [O]
  local name=$1 cn=$2 org=${3:-} subj
  subj="/CN=$cn"
  [[ -z $org ]] || subj="/O=$org/CN=$cn"
  (
    umask 077
    openssl req -newkey rsa:2048 -nodes -keyout "pki/$name.key" -out "pki/$name.csr" -subj "$subj" 2>/dev/null
    printf 'extendedKeyUsage = clientAuth\n' >"pki/$name.ext"
    openssl x509 -req -in "pki/$name.csr" -CA "$ca_crt" -CAkey "$ca_key" -CAcreateserial \
      -CAserial "pki/ca.srl" -days 3650 -extfile "pki/$name.ext" -out "pki/$name.crt" 2>/dev/null \
      || die "cannot sign the certificate of $cn"
    rm -f "pki/$name.csr" "pki/$name.ext"
    cat >"pki/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: gatehouse
  cluster:
    server: $APISERVER_URL
    certificate-authority: $ca_crt
users:
- name: $cn
  user:
    client-certificate: $state/pki/$name.crt
    client-key: $state/pki/$name.key
contexts:
- name: $name
  context:
    cluster: gatehouse
    user: $cn
current-context: $name
EOF
  )
}
identity kube-controller-manager system:kube-controller-manager
identity kube-scheduler system:kube-scheduler
identity kubelet "system:node:$node_name" system:nodes
identity kube-proxy system:kube-proxy

# The API server calls kubelets (logs, exec) as kube-apiserver-kubelet-client (hack/controlplane/up.sh).
kubectl --kubeconfig "$KUBECONFIG" apply -f - >/dev/null <<'EOF' || die "cannot grant the API server its kubelet rights"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: gatehouse-cluster:kube-apiserver-kubelet-client
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kubelet-api-admin
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: kube-apiserver-kubelet-client
EOF

# --- containerd (everything under the state dir), the pause image ------------------------------------
cat >containerd/config.toml <<EOF
version = 2
root = "$state/containerd/root"
state = "$state/containerd/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$containerd_socket"

[plugins."io.containerd.internal.v1.opt"]
  path = "$state/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_ref"
  # The sandbox has no CAP_SYS_RESOURCE: nothing may lower an oom_score_adj (runc would fail with
  # "can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroup v1 with a hybrid unified mount: runc and the cgroupfs driver work (crun refuses it).
        SystemdCgroup = false
        Root = "$runc_root"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
    max_conf_num = 1
EOF

cat >cni/net.d/10-gatehouse.conflist <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$network_name",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$pod_cidr", "gateway": "$node_ip"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$state/cni/networks"
      }
    }
  ]
}
EOF

show_logs_and_die() {
  failure=$1
  log "error: $1"
  local name
  for name in "${node_components[@]}"; do
    [[ -s $state/$name.log ]] || continue
    log "---- last 25 lines of $state/$name.log ----"
    tail -n 25 "$state/$name.log" >&2 || true
  done
  exit 1
}

deadline=$((SECONDS + ready_timeout))
wait_for() { # wait_for <what> <component whose death fails it> <command...>
  local what=$1 component=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    pid_alive "$component" || show_logs_and_die "$component exited while waiting for $what"
    ((SECONDS < deadline)) || show_logs_and_die "$what not reached after ${ready_timeout}s"
    sleep 0.2
  done
}

log "starting containerd on $containerd_socket"
spawn containerd containerd --config "$state/containerd/config.toml" --log-level warn
wait_for "containerd answering" containerd ctr_ version
ctr_ images import "$pause_tar" >/dev/null || die "ctr images import $pause_tar failed"

# --- Control plane controllers, kube-proxy, kubelet ---------------------------------------------------
log "starting kube-controller-manager, kube-scheduler, kube-proxy"
kcm_kubeconfig=$state/pki/kube-controller-manager.kubeconfig
spawn kube-controller-manager "$kube_controller_manager" \
  --kubeconfig="$kcm_kubeconfig" \
  --authentication-kubeconfig="$kcm_kubeconfig" \
  --authorization-kubeconfig="$kcm_kubeconfig" \
  --bind-address=127.0.0.1 \
  --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$controlplane_state/sa.key" \
  --root-ca-file="$ca_crt" \
  --cluster-signing-cert-file="$ca_crt" \
  --cluster-signing-key-file="$ca_key" \
  --cluster-name=gatehouse \
  --service-cluster-ip-range="$service_cidr" \
  --allocate-node-cidrs=false

scheduler_kubeconfig=$state/pki/kube-scheduler.kubeconfig
spawn kube-scheduler "$kube_scheduler" \
  --kubeconfig="$scheduler_kubeconfig" \
  --authentication-kubeconfig="$scheduler_kubeconfig" \
  --authorization-kubeconfig="$scheduler_kubeconfig" \
  --bind-address=127.0.0.1 \
  --leader-elect=false

cat >kube-proxy-config.yaml <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $state/pki/kube-proxy.kubeconfig
hostnameOverride: $node_name
mode: iptables
clusterCIDR: $pod_cidr
# NodePorts only on the bridge, never on an outside interface or on localhost (route_localnet).
nodePortAddresses: ["$node_ip/32"]
iptables:
  localhostNodePorts: false
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the machine's conntrack table sizes and timeouts as they are.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
spawn kube-proxy "$kube_proxy" --config="$state/kube-proxy-config.yaml"

cat >kubelet-config.yaml <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $ca_crt
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$containerd_socket
podLogsDir: $state/pod-logs
staticPodPath: ""
# This host: cgroup v1 (hybrid), no systemd, no swap accounting, no CAP_SYS_RESOURCE.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
oomScoreAdj: 0
# Imported images cannot be pulled again: never garbage-collect them, never evict for a full disk
# of a shared machine.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
  imagefs.inodesFree: 1%
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
EOF

log "starting kubelet (node $node_name, $node_ip)"
spawn kubelet "$kubelet" \
  --config="$state/kubelet-config.yaml" \
  --kubeconfig="$state/pki/kubelet.kubeconfig" \
  --root-dir="$state/kubelet" \
  --cert-dir="$state/kubelet-pki" \
  --hostname-override="$node_name" \
  --node-ip="$node_ip"

wait_for "node $node_name Ready" kubelet node_ready
log "node $node_name Ready after $(elapsed)s"
for name in "${node_components[@]}"; do pid_alive "$name" || show_logs_and_die "$name exited"; done
# ServiceAccount admission refuses Pods until their namespace's "default" ServiceAccount exists.
wait_for "the default ServiceAccount" kube-controller-manager admin_curl /api/v1/namespaces/default/serviceaccounts/default
wait_for "the kube-root-ca.crt ConfigMap" kube-controller-manager admin_curl /api/v1/namespaces/default/configmaps/kube-root-ca.crt

# --- Kubeconfig and env file ---------------------------------------------------------------------------
cp "$controlplane_state/kubeconfig" kubeconfig.tmp
mv kubeconfig.tmp kubeconfig
{
  echo "# Local Gatehouse cluster; source this file. Written by hack/cluster/up.sh."
  printf 'export %s=%q\n' \
    CLUSTER_DIR "$state" \
    KUBECONFIG "$state/kubeconfig" \
    APISERVER_URL "$APISERVER_URL" \
    APISERVER_CA_FILE "$ca_crt" \
    CLUSTER_CONTAINERD_ADDRESS "$containerd_socket" \
    CLUSTER_NODE_NAME "$node_name" \
    CLUSTER_NODE_IP "$node_ip" \
    CLUSTER_POD_CIDR "$pod_cidr" \
    CLUSTER_SERVICE_CIDR "$service_cidr"
} >env.tmp
mv env.tmp env
started_ok=true

log "ready in $(elapsed)s; pids: $(for n in "${node_components[@]}"; do printf '%s %s, ' "$n" "$(<"$n.pid")"; done)logs in $state/*.log"
finish
