#!/usr/bin/env bash
# Stops the local control plane started by up.sh (kube-apiserver, then etcd: TERM, then KILL after
# a few seconds) and removes its state directory. Succeeds when nothing is running.
#
#   State dir: ${GATEHOUSE_CONTROLPLANE_DIR:-<repo root>/target/controlplane}
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${GATEHOUSE_CONTROLPLANE_DIR:-$root/target/controlplane}
grace=${GATEHOUSE_CONTROLPLANE_STOP_GRACE:-5}
marker=.gatehouse-controlplane

log() { printf 'controlplane: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $state == /* ]] || state=$PWD/$state
state=${state%/}
[[ -n $state && $state != / ]] || die "refusing to use '/' as the state directory"

if [[ ! -e $state ]]; then
  log "not running (no $state)"
  exit 0
fi
[[ -e $state/$marker ]] || [[ -z $(ls -A "$state") ]] \
  || die "$state was not created by up.sh (no $marker); refusing to touch it"

# Serialise with up.sh (which calls us while already holding the lock).
if [[ -z ${_GATEHOUSE_CONTROLPLANE_LOCKED:-} ]]; then
  exec {lock_fd}>"$state.lock"
  flock "$lock_fd"
fi

running() { # running <pid>: exists and is not a zombie (a PID 1 that never reaps keeps zombies)
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}

stop() { # stop <name>: only a live process whose command line names $state, so a reused pid is safe
  local name=$1 pid_file="$state/$1.pid" pid
  [[ -s $pid_file ]] || return 0
  pid=$(<"$pid_file")
  if [[ $pid =~ ^[0-9]+$ ]] && running "$pid" \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$state/"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if running "$pid"; then
      log "$name did not exit within ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
      while running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    fi
  fi
  rm -f "$pid_file"
}

stop kube-apiserver
stop etcd
rm -rf -- "$state"
log "stopped; removed $state"
