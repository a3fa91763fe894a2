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

# shellcheck source=hack/spawn.sh
source "$(dirname "${BASH_SOURCE[0]}")/../spawn.sh"
