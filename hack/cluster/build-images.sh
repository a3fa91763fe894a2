#!/usr/bin/env bash
# Builds the local cluster's own container images without a container daemon or a registry, once
# per source version: tarballs are cached under $GATEHOUSE_CACHE (default ~/.cache/gatehouse)/images,
# keyed by a hash of the sources, the compiler and crane, so later runs only print the cached paths.
#
#   build-images.sh [image...]   images: pause (the default) and probe
#
#   pause  localhost/gatehouse/pause:1   the Pod sandbox (pause/pause.c, gcc -static): containerd's
#                                        sandbox_image, since registry.k8s.io is unreachable here
#   probe  localhost/gatehouse/probe:1   the smoke test's in-cluster client (probe/, Go, static):
#                                        reaches the API server through the kubernetes Service
#
# Each image is one layer holding one static binary, run as a non-root user. crane (hack/crane)
# appends the layer to an empty base and sets the entrypoint; crane sets image configs only on a
# registry, so it serves one in memory on a free loopback port for the few seconds of the build.
# Prints "<IMAGE>=<docker-archive tarball>" and "<IMAGE>_REF=<reference>" per image on stdout, for
# hack/cluster/load-image.sh; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

crane=$(bash "$root/hack/crane/build.sh")

# The UID the real pause image runs as; the probe runs as the distroless "nonroot" user, like the
# operator's image.
declare -A ref=([pause]=localhost/gatehouse/pause:1 [probe]=localhost/gatehouse/probe:1)
declare -A user=([pause]=65535:65535 [probe]=65532:65532)

sources_key() { # sources_key <image>: a hash of everything the tarball is made from
  case $1 in
    pause) cat "$here/pause/pause.c"; gcc --version | head -n1 ;;
    probe) cat "$here/probe/go.mod" "$here/probe/main.go"; go version ;;
  esac
  echo "$crane ${ref[$1]} ${user[$1]}"
}

compile() { # compile <image> <output binary>
  case $1 in
    pause)
      command -v gcc >/dev/null || die "gcc is not installed (apt-get install gcc libc6-dev)"
      gcc -static -Os -Wall -Wextra -Werror -o "$2" "$here/pause/pause.c"
      strip "$2"
      ;;
    probe)
      command -v go >/dev/null || die "go is not installed: install the Go toolchain (1.26+) and retry"
      (cd "$here/probe" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$2" .)
      ;;
  esac
}

registry_pid=
work=
cleanup() {
  if [[ -n $registry_pid ]]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  if [[ -n $work ]]; then rm -rf -- "$work"; fi
}
trap cleanup EXIT

quiet() { # quiet <command...>: its output only when it fails
  "$@" >"$work/command.log" 2>&1 || { cat "$work/command.log" >&2; die "$1 ${2:-} failed"; }
}

registry= # host:port of the in-memory registry, started on first need
start_registry() {
  [[ -n $registry ]] && return
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$crane" registry serve --address "127.0.0.1:$port" >"$work/registry.log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 50); do
    if curl -sf --max-time 1 "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
      registry=127.0.0.1:$port
      return
    fi
    sleep 0.1
  done
  cat "$work/registry.log" >&2
  die "crane registry serve did not answer on 127.0.0.1:$port"
}

# Not run in a command substitution: the registry it may start would hold that substitution's pipe.
build_image() { # build_image <image>: sets $tarball to the image's tarball
  local image=$1 key out binary
  key=$(sources_key "$image" | sha256sum | cut -c1-16)
  out="$cache/images/$image-$key.tar"
  if [[ ! -s $out ]]; then
    local start=$SECONDS
    log "building image ${ref[$image]} ..."
    mkdir -p "$cache/images" "$work/$image/rootfs"
    binary="$work/$image/rootfs/$image"
    compile "$image" "$binary"
    chmod 0755 "$binary"
    tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/$image/rootfs" -cf "$work/$image/layer.tar" "$image"
    start_registry
    quiet "$crane" append --oci-empty-base -f "$work/$image/layer.tar" -t "$registry/$image:build"
    quiet "$crane" mutate "$registry/$image:build" --set-platform "linux/$(go env GOARCH)" --entrypoint "/$image" \
      --user "${user[$image]}" -t "${ref[$image]}" -o "$out.tmp.$$"
    mv "$out.tmp.$$" "$out"
    log "built image ${ref[$image]} in $((SECONDS - start))s: $(du -h "$out" | cut -f1) at $out"
  fi
  tarball=$out
}

work=$(mktemp -d)
(($#)) || set -- pause
for image in "$@"; do
  [[ -n ${ref[$image]:-} ]] || die "unknown image '$image' (known: ${!ref[*]})"
  build_image "$image"
  echo "${image^^}=$tarball"
  echo "${image^^}_REF=${ref[$image]}"
done
