#!/usr/bin/env bash
# Builds the helm CLI from the Go module pinned beside this script (no binary download), once per
# pinned version: the binary is cached under $GATEHOUSE_CACHE (default ~/.cache/gatehouse), keyed by
# a hash of the module files and the Go version, so later runs only print the cached path.
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}

log() { printf 'helm: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not installed: install the Go toolchain (1.26+) and retry"; exit 1; }

# The version comes from the pinned module, so `helm version` reports exactly what we build.
helm_version=$(awk '$1 == "helm.sh/helm/v4" {print $2} $1 == "require" && $2 == "helm.sh/helm/v4" {print $3}' "$here/go.mod" | head -n1)
[[ $helm_version =~ ^v4\.[0-9]+\.[0-9]+$ ]] || { log "cannot read the helm.sh/helm/v4 version from go.mod"; exit 1; }
ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.gitTreeState=clean"

key=$( (cat "$here/go.mod" "$here/go.sum" "$here/main.go"; go version; echo "$ldflags") | sha256sum | cut -c1-16)
out="$cache/bin/helm-$key/helm"
if [[ ! -x $out ]]; then
  log "building helm $helm_version (first time for this version; a few minutes on 2 cores) ..."
  start=$SECONDS tmp="$out.tmp.$$"
  mkdir -p "$(dirname "$out")"
  (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$tmp" .)
  mv "$tmp" "$out"
  log "built helm in $((SECONDS - start))s: $(du -h "$out" | cut -f1) at $out"
fi
echo "$out"
