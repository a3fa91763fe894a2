#!/usr/bin/env bash
# Starts a local Kubernetes control plane (etcd + kube-apiserver, loopback only) for tests and for
# trying the operator. Idempotent: if one is already running for the state directory, it only
# prints how to use it.
#
#   State dir:  ${GATEHOUSE_CONTROLPLANE_DIR:-<repo root>/target/controlplane}
#   Kubeconfig: <state>/kubeconfig, contexts admin (system:masters) and alice, bob, carol, dave,
#               erin, mallory (token users without groups: no rights until a test grants them),
#               and frank, in group payments-oncall (a client certificate the CA signs: added to
#               a control plane already running too, since the token file is read only at start).
#   Env file:   <state>/env (KUBECONFIG, APISERVER_URL, ports, pids; source it).
#
# Two knobs, for hack/cluster/up.sh (a control plane that nodes join); the defaults are the fast,
# loopback-only control plane for tests:
#   GATEHOUSE_CONTROLPLANE_ADDRESS=<ip>   serve (bind and advertise) kube-apiserver on this address
#                                         instead of 127.0.0.1; it must be one of this machine's
#   GATEHOUSE_CONTROLPLANE_NODES=true     serve a node and its Pods: ServiceAccount admission,
#                                         Node authorization and NodeRestriction, the "kubernetes"
#                                         Service's endpoint kept at the address (not loopback),
#                                         its names and ClusterIP in the serving certificate, and a
#                                         client certificate for calls to the kubelet
# A running control plane started with other values is restarted.
#
# stdout carries only "export KUBECONFIG=<path>", so `eval "$(hack/controlplane/up.sh)"` works;
# everything else goes to stderr. Stop with hack/controlplane/down.sh; stop and start only the API
# server (keeping etcd and its data) with hack/controlplane/apiserver.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${GATEHOUSE_CONTROLPLANE_DIR:-$root/target/controlplane}
ready_timeout=${GATEHOUSE_CONTROLPLANE_TIMEOUT:-90}
address=${GATEHOUSE_CONTROLPLANE_ADDRESS:-127.0.0.1}
for_nodes=${GATEHOUSE_CONTROLPLANE_NODES:-false}
service_cidr=10.0.0.0/24
service_ip=10.0.0.1 # the first address of $service_cidr: the "kubernetes" Service's ClusterIP
users=(alice bob carol dave erin mallory)
# Users with a group, as <user>:<group>: client certificates (CN user, O group).
group_users=(frank:payments-oncall)
marker=.gatehouse-controlplane

log() { printf 'controlplane: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $state == /* ]] || state=$PWD/$state
state=${state%/}
[[ -n $state && $state != / ]] || die "refusing to use '/' as the state directory"
[[ $address =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "GATEHOUSE_CONTROLPLANE_ADDRESS=$address is not an IPv4 address"
[[ $for_nodes == true || $for_nodes == false ]] || die "GATEHOUSE_CONTROLPLANE_NODES=$for_nodes: use true or false"
# Pods cannot reach a loopback address: theirs is their own.
[[ $for_nodes == false || $address != 127.* ]] \
  || die "GATEHOUSE_CONTROLPLANE_NODES=true needs GATEHOUSE_CONTROLPLANE_ADDRESS on an address Pods reach (not loopback)"
# What a running control plane must have been started with to be reused. Default values are written
# as no file at all, so control planes started before these knobs existed are reused as before.
options=
[[ $address == 127.0.0.1 && $for_nodes == false ]] || options="address=$address nodes=$for_nodes"

# shellcheck source=hack/controlplane/lib.sh
source "$here/lib.sh"

finish() { # prints the usage lines shared by the fast path and a fresh start
  log "kubeconfig: $state/kubeconfig (contexts: admin ${users[*]} ${group_users[*]%%:*}; current: admin)"
  log "env file:   $state/env"
  echo "export KUBECONFIG=$state/kubeconfig"
}

# --- Already running? -----------------------------------------------------------------------------
started_with_options() {
  [[ $(cat "$state/options" 2>/dev/null) == "$options" ]]
}

running_and_ready() {
  local _ _ port
  pid_alive "$state/etcd.pid" && pid_alive "$state/kube-apiserver.pid" \
    && [[ -s $state/kubeconfig && -s $state/env && -s $state/admin.token && -s $state/ports ]] || return 1
  started_with_options || return 1
  read -r _ _ port <"$state/ports"
  readyz "$port" "$(<"$state/admin.token")" || return 1
  log "already running: https://$address:$port (pids $(<"$state/etcd.pid") etcd, $(<"$state/kube-apiserver.pid") kube-apiserver)"
}

has_group_users() { # every group user has a context in the kubeconfig
  local entry
  for entry in "${group_users[@]}"; do
    grep -qx -- "    user: ${entry%%:*}" "$state/kubeconfig" 2>/dev/null || return 1
  done
}

# Signs a client certificate for each group user (CN user, O group) and adds the user and a context
# named like it to the kubeconfig, replaced atomically so that readers never see half of it. Runs
# on a fresh start and on a control plane started before these users existed (under the lock).
add_group_users() {
  has_group_users && return 0
  (
    cd "$state"
    umask 077
    local entry u group
    for entry in "${group_users[@]}"; do
      u=${entry%%:*} group=${entry#*:}
      openssl req -newkey rsa:2048 -nodes -keyout "$u.key" -out "$u.csr" -subj "/O=$group/CN=$u" 2>/dev/null
      printf 'extendedKeyUsage = clientAuth\n' >"$u.ext"
      openssl x509 -req -in "$u.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile "$u.ext" -out "$u.crt" 2>/dev/null || die "cannot sign the certificate of $u"
      rm -f "$u.csr" "$u.ext" ca.srl
    done
    python3 - "${group_users[@]%%:*}" <<'PY'
import base64, sys

def data(path):
    return base64.b64encode(open(path, "rb").read()).decode()

text = open("kubeconfig").read()
for u in sys.argv[1:]:
    if f"\n    user: {u}\n" in text:
        continue
    user = (f"- name: {u}\n  user:\n    client-certificate-data: {data(u + '.crt')}\n"
            f"    client-key-data: {data(u + '.key')}\n")
    context = f"- name: {u}\n  context:\n    cluster: gatehouse\n    user: {u}\n"
    text = text.replace("\ncontexts:\n", "\n" + user + "contexts:\n", 1)
    text = text.replace("\ncurrent-context:", "\n" + context.rstrip("\n") + "\ncurrent-context:", 1)
open("kubeconfig.tmp", "w").write(text)
PY
    mv kubeconfig.tmp kubeconfig
  )
  log "kubeconfig: added ${group_users[*]} (user:group, client certificates)"
}

# Fast path, read-only and without the lock.
if running_and_ready && has_group_users; then
  finish
  exit 0
fi

# Serialise concurrent up.sh/down.sh runs on the same state directory. The lock lives beside the
# state directory because down.sh removes the directory itself. Started processes never inherit it.
mkdir -p "$(dirname "$state")"
exec {lock_fd}>"$state.lock"
flock "$lock_fd"
export _GATEHOUSE_CONTROLPLANE_LOCKED=1 # down.sh, called below, must not wait for our own lock

if [[ -e $state ]]; then
  if [[ ! -e $state/$marker ]] && [[ -n $(ls -A "$state") ]]; then
    die "$state exists, is not empty and was not created by this script; refusing to touch it"
  fi
  if running_and_ready; then # another up.sh started it while we waited for the lock
    add_group_users
    finish
    exit 0
  fi
  if pid_alive "$state/etcd.pid" && pid_alive "$state/kube-apiserver.pid" && ! started_with_options; then
    log "running with other options than asked (${options:-the defaults}); restarting"
  elif pid_alive "$state/etcd.pid" && pid_alive "$state/kube-apiserver.pid"; then
    log "processes are running but /readyz does not answer; restarting"
  else
    log "stale state in $state; cleaning it"
  fi
  "$here/down.sh"
fi

# --- Prerequisites ----------------------------------------------------------------------------------
for tool in curl python3 flock setsid; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
if ! command -v openssl >/dev/null; then
  log "openssl is not installed; installing it with apt-get"
  if [[ $(id -u) == 0 ]]; then apt-get install -y openssl >&2; else sudo apt-get install -y openssl >&2; fi
fi

bins=$("$here/build.sh")
kube_apiserver=$(sed -n 's/^KUBE_APISERVER=//p' <<<"$bins")
etcd=$(sed -n 's/^ETCD=//p' <<<"$bins")
[[ -x $kube_apiserver && -x $etcd ]] || die "build.sh did not print usable binaries: $bins"

# --- From here on, a failure stops whatever we started (logs stay in $state for inspection). -----
started_ok=false
stop_started() {
  local f pid
  for f in "$state/kube-apiserver.pid" "$state/etcd.pid"; do
    if pid_alive "$f"; then
      pid=$(<"$f")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in 1 2 3 4 5 6 7 8 9 10; do running "$pid" || break; sleep 0.5; done
      if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$f"
  done
}
trap '$started_ok || stop_started' EXIT

umask 077
mkdir -p "$state"
touch "$state/$marker"
cd "$state"
if [[ -n $options ]]; then echo "$options" >options; fi

# Free ports (etcd's on loopback, the API server's on its address): bind all three at once so they
# are distinct, then release them.
read -r etcd_client_port etcd_peer_port port < <(python3 - "$address" <<'EOF'
import socket, sys
socks = []
for host in ("127.0.0.1", "127.0.0.1", sys.argv[1]):
    s = socket.socket()
    s.bind((host, 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
EOF
)
echo "$etcd_client_port $etcd_peer_port $port" >ports
etcd_url=http://127.0.0.1:$etcd_client_port
etcd_peer_url=http://127.0.0.1:$etcd_peer_port
server=https://$address:$port

# --- Certificates, keys and tokens ----------------------------------------------------------------
openssl_q() { openssl "$@" 2>openssl.log || { cat openssl.log >&2; die "openssl $1 failed"; }; }
openssl_q req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
  -subj "/CN=gatehouse-controlplane-ca"
openssl_q req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
sans="IP:127.0.0.1, DNS:localhost"
[[ $address == 127.0.0.1 ]] || sans+=", IP:$address"
# What in-cluster clients dial: the Service's ClusterIP (KUBERNETES_SERVICE_HOST) and its DNS names.
[[ $for_nodes == false ]] || sans+=", IP:$service_ip, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local"
cat >apiserver.ext <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $sans
EOF
openssl_q x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
  -extfile apiserver.ext -out apiserver.crt
if [[ $for_nodes == true ]]; then
  # The API server's identity towards kubelets (logs, exec, port-forward); hack/cluster/up.sh binds
  # it to system:kubelet-api-admin.
  openssl_q req -newkey rsa:2048 -nodes -keyout kubelet-client.key -out kubelet-client.csr \
    -subj "/CN=kube-apiserver-kubelet-client"
  printf 'extendedKeyUsage = clientAuth\n' >kubelet-client.ext
  openssl_q x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile kubelet-client.ext -out kubelet-client.crt
  rm -f kubelet-client.csr kubelet-client.ext
fi
openssl_q genrsa -out sa.key 2048
openssl_q rsa -in sa.key -pubout -out sa.pub
rm -f apiserver.csr apiserver.ext ca.srl openssl.log

declare -A token
token[admin]=$(openssl rand -hex 24)
for u in "${users[@]}"; do token[$u]=$(openssl rand -hex 24); done
echo "${token[admin]}" >admin.token
{
  echo "${token[admin]},admin,admin,\"system:masters\""
  for u in "${users[@]}"; do echo "${token[$u]},$u,$u"; done
} >tokens.csv

# --- Start etcd and kube-apiserver, detached ------------------------------------------------------
etcd_flags=(
  --name=gatehouse
  --data-dir="$state/etcd"
  --listen-client-urls="$etcd_url"
  --advertise-client-urls="$etcd_url"
  --listen-peer-urls="$etcd_peer_url"
  --initial-advertise-peer-urls="$etcd_peer_url"
  --initial-cluster="gatehouse=$etcd_peer_url"
  --initial-cluster-state=new
  --unsafe-no-fsync=true
  --log-level=warn
)
apiserver_flags=(
  --service-cluster-ip-range="$service_cidr"
  --allow-privileged=true
)
if [[ $for_nodes == true ]]; then
  apiserver_flags+=(
    --enable-admission-plugins=ValidatingAdmissionPolicy,NodeRestriction
    --authorization-mode=Node,RBAC
    --kubelet-client-certificate="$state/kubelet-client.crt"
    --kubelet-client-key="$state/kubelet-client.key"
    # The node's hostname need not resolve; its InternalIP is where the kubelet listens.
    --kubelet-preferred-address-types=InternalIP
  )
else
  apiserver_flags+=(
    --disable-admission-plugins=ServiceAccount
    --enable-admission-plugins=ValidatingAdmissionPolicy
    --authorization-mode=RBAC
  )
fi
apiserver_flags+=(
  --secure-port="$port"
  --bind-address="$address"
  --advertise-address="$address"
  --etcd-servers="$etcd_url"
  --tls-cert-file="$state/apiserver.crt"
  --tls-private-key-file="$state/apiserver.key"
  --client-ca-file="$state/ca.crt"
  --token-auth-file="$state/tokens.csv"
  --service-account-issuer="$server"
  --service-account-key-file="$state/sa.pub"
  --service-account-signing-key-file="$state/sa.key"
  --api-audiences="$server"
)
if [[ $for_nodes == false ]]; then
  # Nothing runs in this cluster, and the "kubernetes" Service's endpoint would be 127.0.0.1, which
  # the Endpoints validation rejects every 10 s; keep the Service, skip endpoint reconciliation.
  apiserver_flags+=(--endpoint-reconciler-type=none)
fi

start=$EPOCHREALTIME
log "starting etcd on $etcd_url (peer $etcd_peer_url)"
spawn etcd "$etcd" "${etcd_flags[@]}"

show_logs_and_die() {
  log "error: $1"
  local name
  for name in kube-apiserver etcd; do
    [[ -e $state/$name.log ]] || continue
    log "---- last 40 lines of $state/$name.log ----"
    tail -n 40 "$state/$name.log" >&2 || true
  done
  exit 1
}

# Start the API server only once etcd answers, so its log is not flooded with connection retries.
deadline=$((SECONDS + ready_timeout))
until curl -sf --max-time 2 "$etcd_url/health" >/dev/null 2>&1; do
  pid_alive etcd.pid || show_logs_and_die "etcd exited during startup"
  ((SECONDS < deadline)) || show_logs_and_die "etcd not healthy after ${ready_timeout}s"
  sleep 0.1
done

log "starting kube-apiserver on $server"
# Its exact command, NUL-separated, so that apiserver.sh can start it again the same way.
printf '%s\0' "$kube_apiserver" "${apiserver_flags[@]}" >kube-apiserver.cmd
spawn kube-apiserver "$kube_apiserver" "${apiserver_flags[@]}"

until readyz "$port" "${token[admin]}"; do
  pid_alive etcd.pid || show_logs_and_die "etcd exited during startup"
  pid_alive kube-apiserver.pid || show_logs_and_die "kube-apiserver exited during startup"
  ((SECONDS < deadline)) || show_logs_and_die "kube-apiserver not ready after ${ready_timeout}s"
  sleep 0.2
done
log "ready in $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s"

# --- Kubeconfig and env file ----------------------------------------------------------------------
{
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: gatehouse
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
EOF
  for u in admin "${users[@]}"; do
    printf -- '- name: %s\n  user:\n    token: %s\n' "$u" "${token[$u]}"
  done
  echo "contexts:"
  for u in admin "${users[@]}"; do
    printf -- '- name: %s\n  context:\n    cluster: gatehouse\n    user: %s\n' "$u" "$u"
  done
  echo "current-context: admin"
} >kubeconfig.tmp
mv kubeconfig.tmp kubeconfig
add_group_users

{
  echo "# Local Gatehouse control plane; source this file. Written by hack/controlplane/up.sh."
  echo "# (No ETCD_* names: etcd reads every ETCD_* variable as a flag.)"
  printf 'export %s=%q\n' \
    CONTROLPLANE_DIR "$state" \
    KUBECONFIG "$state/kubeconfig" \
    APISERVER_URL "$server" \
    APISERVER_PORT "$port" \
    APISERVER_CA_FILE "$state/ca.crt" \
    APISERVER_PID "$(<kube-apiserver.pid)" \
    CONTROLPLANE_ETCD_URL "$etcd_url" \
    CONTROLPLANE_ETCD_CLIENT_PORT "$etcd_client_port" \
    CONTROLPLANE_ETCD_PEER_PORT "$etcd_peer_port" \
    CONTROLPLANE_ETCD_PID "$(<etcd.pid)"
} >env.tmp
mv env.tmp env
started_ok=true

log "etcd pid $(<etcd.pid), kube-apiserver pid $(<kube-apiserver.pid); logs in $state/*.log"
if command -v kubectl >/dev/null; then
  # The installed kubectl may be older than the server; drop its version-skew warning.
  { kubectl --kubeconfig "$state/kubeconfig" version 2>&1 || true; } | grep -v '^WARNING: version difference' >&2 || true
else
  log "server version: $(curl -sf --cacert ca.crt -H "Authorization: Bearer ${token[admin]}" "$server/version" | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')"
fi
finish
