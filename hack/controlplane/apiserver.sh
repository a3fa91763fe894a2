#!/usr/bin/env bash
# Stops or starts only the kube-apiserver of a control plane that up.sh started, keeping etcd and
# its data: for tests of what the operator does while the API server is away, or after it restarted
# (its watch cache starts afresh from etcd). `start` runs the exact command up.sh ran (recorded in
# <state>/kube-apiserver.cmd) on the same port and waits for /readyz; the env file's
# APISERVER_PID is updated. Idempotent: `stop` when stopped and `start` when ready do nothing.
#
#   hack/controlplane/apiserver.sh stop|start
#   State dir: ${GATEHOUSE_CONTROLPLANE_DIR:-<repo root>/target/controlplane}
#
# Prints on stdout how long the step took in seconds (e.g. "1.7"), for callers that measure it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${GATEHOUSE_CONTROLPLANE_DIR:-$root/target/controlplane}
ready_timeout=${GATEHOUSE_CONTROLPLANE_TIMEOUT:-90}
grace=${GATEHOUSE_CONTROLPLANE_STOP_GRACE:-5}

log() { printf 'controlplane: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $state == /* ]] || state=$PWD/$state
state=${state%/}
[[ -n $state && $state != / ]] || die "refusing to use '/' as the state directory"
# shellcheck source=hack/controlplane/lib.sh
source "$here/lib.sh"

action=${1:-}
[[ $action == stop || $action == start ]] || die "usage: $0 stop|start"
[[ -s $state/kube-apiserver.cmd && -s $state/ports && -s $state/admin.token ]] \
  || die "no control plane started by up.sh in $state (run hack/controlplane/up.sh first)"
pid_alive "$state/etcd.pid" || die "etcd of $state is not running; restart the whole control plane with up.sh"

# Serialise with up.sh and down.sh.
exec {lock_fd}>"$state.lock"
flock "$lock_fd"

read -r _ _ port <"$state/ports"
# The address it serves on (up.sh's GATEHOUSE_CONTROLPLANE_ADDRESS), from its recorded URL.
address=$(sed -n 's|^export APISERVER_URL=https://\([^:]*\):.*|\1|p' "$state/env")
token=$(<"$state/admin.token")
began=$EPOCHREALTIME
took() { awk -v a="$began" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", b - a }'; }

if [[ $action == stop ]]; then
  if pid_alive "$state/kube-apiserver.pid"; then
    pid=$(<"$state/kube-apiserver.pid")
    log "stopping kube-apiserver (pid $pid); etcd keeps running"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + grace))
    while running "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
    if running "$pid"; then
      log "kube-apiserver did not exit within ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      while running "$pid"; do sleep 0.05; done
    fi
  else
    log "kube-apiserver is not running"
  fi
  rm -f "$state/kube-apiserver.pid"
  took
  exit 0
fi

if pid_alive "$state/kube-apiserver.pid" && readyz "$port" "$token"; then
  log "kube-apiserver is already running and ready"
  took
  exit 0
fi
pid_alive "$state/kube-apiserver.pid" && die "kube-apiserver runs but is not ready; stop it first"
mapfile -d '' -t command <"$state/kube-apiserver.cmd"
log "starting kube-apiserver again on https://$address:$port"
spawn kube-apiserver "${command[@]}"
deadline=$((SECONDS + ready_timeout))
until readyz "$port" "$token"; do
  pid_alive "$state/kube-apiserver.pid" || { tail -n 40 "$state/kube-apiserver.log" >&2; die "kube-apiserver exited during startup"; }
  ((SECONDS < deadline)) || die "kube-apiserver not ready after ${ready_timeout}s"
  sleep 0.05
done
sed -i "s/^export APISERVER_PID=.*/export APISERVER_PID=$(<"$state/kube-apiserver.pid")/" "$state/env"
log "kube-apiserver ready again (pid $(<"$state/kube-apiserver.pid"))"
took
