# Functions shared by up.sh and apiserver.sh (sourced; they need $state, the state directory, and
# log/die). Not a script of its own.

running() { # running <pid>: exists and is not a zombie (a PID 1 that never reaps keeps zombies)
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}

pid_alive() { # pid_alive <pid file>: the process is running and is ours (its command line names $state)
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && running "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$state/"
}

readyz() { # readyz <port> <admin token>: on $address (default 127.0.0.1)
  curl -sf --max-time 2 --cacert "$state/ca.crt" -H "Authorization: Bearer $2" \
    "https://${address:-127.0.0.1}:$1/readyz" >/dev/null 2>&1
}

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
