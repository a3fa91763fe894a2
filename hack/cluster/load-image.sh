#!/usr/bin/env bash
# Imports container images into the running local cluster's containerd (namespace k8s.io, where the
# kubelet looks), so that Pods of them start without a registry (pull policy IfNotPresent or Never).
# Importing a tarball again replaces the tag's image, e.g. a new build of the operator before a
# `helm upgrade`; Pods already running keep the image they started with.
#
#   hack/cluster/load-image.sh <image.tar>...   docker-archive or OCI tarballs (crane, make image)
#
#   State dir: ${GATEHOUSE_CLUSTER_DIR:-<repo root>/target/cluster}
# Prints each imported image reference on stdout; progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=hack/cluster/lib.sh
source "$here/lib.sh"

(($#)) || die "usage: hack/cluster/load-image.sh <image.tar>..."
pid_alive containerd || die "the cluster is not running (no containerd for $state): start it with make cluster"

for tarball in "$@"; do
  [[ -s $tarball ]] || die "$tarball does not exist or is empty"
  output=$(ctr_ images import "$tarball" 2>&1) || die "ctr images import $tarball failed: $output"
  # ctr prints "unpacking <ref> (sha256:...)...done" for each image of the tarball.
  refs=$(sed -n 's/^unpacking \([^ ]*\) (.*/\1/p' <<<"$output")
  [[ -n $refs ]] || die "ctr images import $tarball imported no image: $output"
  log "imported $(tr '\n' ' ' <<<"$refs")from $tarball"
  echo "$refs"
done
