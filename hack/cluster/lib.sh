# shellcheck shell=bash
# Shared by hack/cluster/{up,down,load-image}.sh (sourced, not run): the cluster's fixed layout and
# the helpers that start, find and stop its processes. Every process the cluster starts names the
# state directory in its command line, so a pid is only ever acted on after checking that.

cluster_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state=${GATEHOUSE_CLUSTER_DIR:-$cluster_root/target/cluster}
[[ $state == /* ]] || state=$PWD/$state
state=${state%/}

marker=.gatehouse-cluster
controlplane_state=$state/controlplane
# The Pod network: a bridge of our own (its alias names the state directory that owns it), Pods in
# 10.88.0.0/16, the bridge's 10.88.0.1 doubling as the node's and the API server's address.
bridge=gatehouse0
pod_cidr=10.88.0.0/16
node_ip=10.88.0.1
service_cidr=10.0.0.0/24 # as hack/controlplane/up.sh
network_name=gatehouse-cluster
node_name=gatehouse-node
containerd_socket=$state/run/containerd.sock
runc_root=$state/run/runc
# Node components in the order they start; they are stopped in reverse.
node_components=(containerd kube-controller-manager kube-scheduler kube-proxy kubelet)
# Kernel settings the kubelet (setupKernelTunables) and the bridge plugin (ip_forward) change:
# recorded before the first start and put back by down.sh.
saved_sysctls=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
  kernel/keys/root_maxkeys kernel/keys/root_maxbytes net/ipv4/ip_forward)

log() { printf 'cluster: %s\n' "$*" >&2; }
failure= # the reason of the last die, for up.sh's last line after its cleanup
die() {
  failure=$*
  log "error: $*"
  exit 1
}

[[ -n $state && $state != / ]] || die "refusing to use '/' as the state directory"

running() { # running <pid>: exists and is not a zombie (a PID 1 that never reaps keeps zombies)
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}

ours() { # ours <pid>: running, and its command line names the state directory
  running "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$state/"
}

pid_alive() { # pid_alive <name>: the process of <state>/<name>.pid runs and is ours
  local pid
  [[ -s $state/$1.pid ]] || return 1
  pid=$(<"$state/$1.pid")
  [[ $pid =~ ^[0-9]+$ ]] && ours "$pid"
}

stop_pid() { # stop_pid <name> <pid>: TERM, then KILL after a grace period
  local name=$1 pid=$2 deadline
  ours "$pid" || return 0
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + ${GATEHOUSE_CLUSTER_STOP_GRACE:-10}))
  while running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  if running "$pid"; then
    log "$name did not exit in time; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  fi
}

stop_component() { # stop_component <name>: the process of its pid file, which is then removed
  local pid
  if [[ -s $state/$1.pid ]]; then
    pid=$(<"$state/$1.pid")
    [[ ! $pid =~ ^[0-9]+$ ]] || stop_pid "$1" "$pid"
  fi
  rm -f "$state/$1.pid"
}

# shellcheck source=hack/spawn.sh
source "$(dirname "${BASH_SOURCE[0]}")/../spawn.sh"

ctr_() { ctr --address "$containerd_socket" --namespace k8s.io "$@"; }
