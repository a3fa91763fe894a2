#!/usr/bin/env bash
# Stops the local cluster started by hack/cluster/up.sh and removes everything it made, in an order
# that never deletes through a live mount:
#   1. the kubelet, kube-proxy, kube-scheduler, kube-controller-manager, containerd (TERM, then KILL;
#      only processes whose command line names the state dir);
#   2. every container left (runc delete --force, from the state dir's runc root) and their shims;
#   3. the control plane (hack/controlplane/down.sh), while its address on the bridge still exists
#      (without it kube-apiserver's shutdown hangs);
#   4. kube-proxy's and the kubelet's iptables chains (kube-proxy --cleanup), the FORWARD guard, the
#      bridge (only if its alias names this state dir), the CNI plugins' result cache, the kernel
#      settings put back;
#   5. every mount under the state dir (the kubelet's tmpfs volumes, containerd's rootfs and netns),
#      then the state dir.
# Idempotent: succeeds when nothing is running.
#
#   State dir: ${GATEHOUSE_CLUSTER_DIR:-<repo root>/target/cluster}
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/cluster/lib.sh
source "$here/lib.sh"

if [[ ! -e $state ]]; then
  log "not running (no $state)"
  exit 0
fi
[[ -e $state/$marker ]] || [[ -z $(ls -A "$state") ]] \
  || die "$state was not created by hack/cluster/up.sh (no $marker); refusing to touch it"
[[ $(id -u) == 0 ]] || die "needs root (mounts, iptables, the bridge): run as root"

if [[ -z ${_GATEHOUSE_CLUSTER_LOCKED:-} ]]; then
  exec {lock_fd}>"$state.lock"
  flock "$lock_fd"
fi

# --- 1. Components, the kubelet first so that it restarts nothing -----------------------------------
for ((i = ${#node_components[@]} - 1; i >= 0; i--)); do
  stop_component "${node_components[i]}"
done

# --- 2. Containers and shims ------------------------------------------------------------------------
# runc's state survives containerd: delete (and kill) every container it still knows.
if [[ -d $runc_root ]]; then
  for root in "$runc_root"/*/; do
    [[ -d $root ]] || continue
    while read -r id; do
      [[ -n $id ]] || continue
      runc --root "$root" delete --force "$id" 2>/dev/null || log "warning: runc delete --force $id failed"
    done < <(runc --root "$root" list -q 2>/dev/null)
  done
fi
# Shims serve containerd at <state>/run/containerd.sock and name it in their command line; their
# sockets sit in /run/containerd/s (containerd 1.6 puts them there whatever its state dir), named in
# each task's bundle.
for pid in $(pgrep -f -- "-address $containerd_socket" || true); do
  stop_pid containerd-shim "$pid"
done
for address in "$state"/containerd/state/io.containerd.runtime.v2.task/*/*/address; do
  [[ -f $address ]] || continue
  socket=$(sed -n 's#^unix://##p' "$address")
  [[ $socket == /run/containerd/s/* ]] && rm -f -- "$socket"
done
rmdir /run/containerd/s /run/containerd 2>/dev/null || true


# --- 3. Control plane ------------------------------------------------------------------------------
GATEHOUSE_CONTROLPLANE_DIR=$controlplane_state bash "$cluster_root/hack/controlplane/down.sh"

# --- 4. Network and kernel settings -----------------------------------------------------------------
if [[ -s $state/kube-proxy.path && -x $(<"$state/kube-proxy.path") ]]; then
  "$(<"$state/kube-proxy.path")" --cleanup >"$state/kube-proxy-cleanup.log" 2>&1 \
    || log "warning: kube-proxy --cleanup failed: $(tail -n 3 "$state/kube-proxy-cleanup.log")"
fi
# The kubelet's own chains (kube-proxy --cleanup leaves them): the canaries it watches for flushes,
# the hint that tells kube-proxy which iptables backend is in use, and the firewall against
# non-local traffic to 127.0.0.0/8.
for tool in iptables ip6tables; do
  command -v "$tool" >/dev/null || continue
  for hook in INPUT OUTPUT; do
    while "$tool" -t filter -D "$hook" -j KUBE-FIREWALL 2>/dev/null; do :; done
  done
  for chain in filter:KUBE-FIREWALL filter:KUBE-KUBELET-CANARY nat:KUBE-KUBELET-CANARY \
    mangle:KUBE-KUBELET-CANARY mangle:KUBE-IPTABLES-HINT; do
    if "$tool" -t "${chain%%:*}" -S "${chain#*:}" >/dev/null 2>&1; then
      "$tool" -t "${chain%%:*}" -F "${chain#*:}" && "$tool" -t "${chain%%:*}" -X "${chain#*:}" \
        || log "warning: cannot remove $tool chain $chain"
    fi
  done
done
guard_comment="gatehouse cluster $state"
while iptables -D FORWARD -s "$pod_cidr" ! -d "$pod_cidr" -m comment --comment "$guard_comment" -j DROP 2>/dev/null; do :; done
if [[ -e /sys/class/net/$bridge && $(cat "/sys/class/net/$bridge/ifalias" 2>/dev/null) == "$state" ]]; then
  ip link del "$bridge"
  log "removed bridge $bridge"
fi
# libcni caches each attachment's result outside containerd's state dir, per network and sandbox:
# ours by network name, and containerd's built-in loopback network's for the sandboxes it ran here.
rm -f /var/lib/cni/results/"$network_name"-*
for bundle in "$state"/containerd/state/io.containerd.runtime.v2.task/*/*/; do
  [[ -d $bundle ]] || continue
  id=$(basename "$bundle")
  rm -f /var/lib/cni/results/cni-loopback-"$id"-*
done
# Left by the kubelet and containerd outside the state dir whatever their settings (the device
# plugin socket's path and the containers' cgroup parent are fixed); removed only when then empty.
rm -f /var/lib/kubelet/device-plugins/kubelet.sock
rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /var/lib/cni/results /var/lib/cni 2>/dev/null || true
for parent in /sys/fs/cgroup/*/k8s.io; do
  [[ -d $parent ]] && rmdir "$parent" 2>/dev/null || true
done
if [[ -s $state/sysctl.saved ]]; then
  while read -r key value; do
    [[ $(<"/proc/sys/$key") == "$value" ]] || echo "$value" >"/proc/sys/$key" 2>/dev/null \
      || log "warning: cannot restore $key to $value"
  done <"$state/sysctl.saved"
fi

# --- 5. Mounts (deepest first; a busy one is detached lazily, which rm -rf then cannot cross) ------
mounts_under_state() { # mount points at or under the state dir, deepest first
  python3 - "$state" <<'EOF'
import sys
state = sys.argv[1]
def unescape(path):  # mountinfo escapes space, tab, newline and backslash as octal
    return path.encode().decode("unicode_escape").encode("latin-1").decode()
points = set()
for line in open("/proc/self/mountinfo"):
    point = unescape(line.split()[4])
    if point == state or point.startswith(state + "/"):
        points.add(point)
for point in sorted(points, key=lambda p: (-p.count("/"), p)):
    print(point)
EOF
}
for _ in 1 2 3 4 5; do
  points=$(mounts_under_state)
  [[ -n $points ]] || break
  while IFS= read -r point; do
    umount "$point" 2>/dev/null || umount -l "$point" 2>/dev/null || true
  done <<<"$points"
done
points=$(mounts_under_state)
[[ -z $points ]] || die "still mounted under $state, not removing it: $points"

# Anything else naming the state dir was not started by up.sh (a pager on a log, say): say so only.
for pid in $(pgrep -f -- "$state/" || true); do
  if [[ $pid != "$$" ]] && ours "$pid"; then
    log "warning: still running and using $state: pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-100)"
  fi
done
rm -rf -- "$state"
log "stopped; removed $state"
