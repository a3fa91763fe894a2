#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go modules pinned beside this script, once per pinned
# version: binaries are cached under $GATEHOUSE_CACHE (default ~/.cache/gatehouse), keyed by a hash
# of the module files and the Go version, so later runs only print the cached paths.
# Prints "KUBE_APISERVER=<path>" and "ETCD=<path>" on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}

log() { printf 'controlplane: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not installed: install the Go toolchain (1.26+) and retry"; exit 1; }

# The Kubernetes version comes from the pinned module, so /version reports exactly what we build.
kube_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2} $1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/kube-apiserver/go.mod" | head -n1)
[[ $kube_version =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || { log "cannot read the k8s.io/kubernetes version from kube-apiserver/go.mod"; exit 1; }
kube_minor=${BASH_REMATCH[1]}

build() {
  local name=$1 ldflags=$2
  local key
  key=$( (cat "$here/$name/go.mod" "$here/$name/go.sum" "$here/$name/main.go"; go version; echo "$ldflags") | sha256sum | cut -c1-16)
  local out="$cache/bin/$name-$key/$name"
  if [[ ! -x $out ]]; then
    log "building $name (first time for this version; several minutes on 2 cores) ..."
    local start=$SECONDS tmp="$out.tmp.$$"
    mkdir -p "$(dirname "$out")"
    (cd "$here/$name" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$tmp" .)
    mv "$tmp" "$out"
    log "built $name in $((SECONDS - start))s: $(du -h "$out" | cut -f1) at $out"
  fi
  echo "$out"
}

version_pkg=k8s.io/component-base/version
apiserver=$(build kube-apiserver "-s -w -X $version_pkg.gitVersion=$kube_version -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$kube_minor -X $version_pkg.gitTreeState=clean -X $version_pkg.buildDate=1970-01-01T00:00:00Z")
etcd=$(build etcd "-s -w")
echo "KUBE_APISERVER=$apiserver"
echo "ETCD=$etcd"
