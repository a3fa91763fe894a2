#!/usr/bin/env bash
# Builds the crane CLI (go-containerregistry) from the Go module pinned beside this script (no
# binary download), once per pinned version: the binary is cached under $GATEHOUSE_CACHE (default
# ~/.cache/gatehouse), keyed by a hash of the module files and the Go version, so later runs only
# print the cached path. Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}

log() { printf 'crane: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not installed: install the Go toolchain (1.26+) and retry"; exit 1; }

key=$( (cat "$here/go.mod" "$here/go.sum" "$here/main.go"; go version) | sha256sum | cut -c1-16)
out="$cache/bin/crane-$key/crane"
if [[ ! -x $out ]]; then
  log "building crane (first time for this version; about a minute on 2 cores) ..."
  start=$SECONDS tmp="$out.tmp.$$"
  mkdir -p "$(dirname "$out")"
  (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$tmp" .)
  mv "$tmp" "$out"
  log "built crane in $((SECONDS - start))s: $(du -h "$out" | cut -f1) at $out"
fi
echo "$out"
