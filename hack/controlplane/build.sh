#!/usr/bin/env bash
# Builds Kubernetes components and etcd from the Go modules pinned beside this script, once per
# pinned version: binaries are cached under $GATEHOUSE_CACHE (default ~/.cache/gatehouse), keyed by
# a hash of the module files, the component's main.go and the Go version, so later runs only print
# the cached paths.
#
#   build.sh [component...]   components: kube-apiserver etcd (the default: the control plane)
#                             kube-controller-manager kube-scheduler kubelet kube-proxy (the node)
#
# The Kubernetes components are main packages of one Go module (kubernetes/), so they share one
# module graph and one build cache: after kube-apiserver, each further one mostly links.
# Prints "<COMPONENT>=<path>" per component on stdout (e.g. "KUBE_APISERVER=<path>",
# "ETCD=<path>"), in the order asked; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}

log() { printf 'controlplane: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not installed: install the Go toolchain (1.26+) and retry"; exit 1; }

# The Kubernetes version comes from the pinned module, so /version reports exactly what we build.
kube_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2} $1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/kubernetes/go.mod" | head -n1)
[[ $kube_version =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || { log "cannot read the k8s.io/kubernetes version from kubernetes/go.mod"; exit 1; }
kube_minor=${BASH_REMATCH[1]}

build() { # build <name> <module dir> <main package dir, relative to the module> <ldflags>
  local name=$1 module=$2 package=$3 ldflags=$4
  local key
  key=$( (cat "$module/go.mod" "$module/go.sum" "$module/$package/main.go"; go version; echo "$ldflags") | sha256sum | cut -c1-16)
  local out="$cache/bin/$name-$key/$name"
  if [[ ! -x $out ]]; then
    log "building $name (first time for this version; several minutes on 2 cores) ..."
    local start=$SECONDS tmp="$out.tmp.$$"
    mkdir -p "$(dirname "$out")"
    (cd "$module" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$tmp" "./$package")
    mv "$tmp" "$out"
    log "built $name in $((SECONDS - start))s: $(du -h "$out" | cut -f1) at $out"
  fi
  echo "$out"
}

version_pkg=k8s.io/component-base/version
kube_ldflags="-s -w -X $version_pkg.gitVersion=$kube_version -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$kube_minor -X $version_pkg.gitTreeState=clean -X $version_pkg.buildDate=1970-01-01T00:00:00Z"

(($#)) || set -- kube-apiserver etcd
for component in "$@"; do
  case $component in
    etcd) path=$(build etcd "$here/etcd" . "-s -w") ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy)
      path=$(build "$component" "$here/kubernetes" "$component" "$kube_ldflags") ;;
    *) log "unknown component '$component' (known: kube-apiserver etcd kube-controller-manager kube-scheduler kubelet kube-proxy)"; exit 1 ;;
  esac
  name=${component^^}
  echo "${name//-/_}=$path"
done
