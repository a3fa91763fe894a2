# Shared by hack/controlplane/lib.sh and hack/cluster/lib.sh (sourced, not run): starting the
# long-lived processes of the control plane and the node. Uses the caller's $state and die.

# Starts <binary> detached as <name>, logging to $state/<name>.log (appended: a restarted
# kube-apiserver keeps the log of its earlier run). The child writes its own pid before exec'ing,
# so the pid file is right whether or not setsid forks, and closes every inherited descriptor
# above 2 (our lock, a caller's pipes) so that the long-lived processes hold nothing of ours.
spawn() { # spawn <name> <binary> <args...>
  local name=$1
  shift
  rm -f "$state/$name.pid"
  # shellcheck disable=SC2016 # expanded by the child shell
  setsid bash -c '
    echo $$ >"$0"
    unset "${!ETCD_@}" # etcd takes ETCD_* variables from the environment as flags
    for fd in /proc/$$/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec "$@"' "$state/$name.pid" "$@" </dev/null >>"$state/$name.log" 2>&1 &
  for _ in $(seq 50); do [[ -s $state/$name.pid ]] && return; sleep 0.1; done
  die "$name did not start"
}
