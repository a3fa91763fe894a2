#!/usr/bin/env bash
# `make run`: Gatehouse in the foreground against the cluster of $KUBECONFIG, or, when KUBECONFIG is
# not set, against the local control plane (started if needed) with demo namespaces and users.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
log() { printf 'gatehouse: %s\n' "$*" >&2; }

local_plane=false
if [[ -z ${KUBECONFIG:-} ]]; then
  local_plane=true
  bash hack/controlplane/up.sh >/dev/null
  export KUBECONFIG=${GATEHOUSE_CONTROLPLANE_DIR:-$root/target/controlplane}/kubeconfig
fi
log "cluster: $(kubectl config current-context) at $(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"

log "building the operator ..."
cargo build --quiet --bin gatehouse  # build before printing the next steps
log "installing CRDs ..."
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
# Another operator is installed or running when its Deployment (deploy/ or the Helm chart) exists
# in the operator's namespace, or when someone holds a fresh Lease there (e.g. the e2e suite's). This
# one then joins the election and stands by while that one leads.
lease_namespace=${POD_NAMESPACE:-gatehouse-system}
installed=false
if kubectl get namespace "$lease_namespace" >/dev/null 2>&1; then
  if kubectl get deployment gatehouse -n "$lease_namespace" >/dev/null 2>&1; then
    installed=true
  else
    lease=$(kubectl get lease gatehouse-operator -n "$lease_namespace" \
      -o jsonpath='{.spec.renewTime} {.spec.leaseDurationSeconds}' 2>/dev/null || true)
    read -r renewed duration <<<"$lease"
    if [[ -n ${renewed:-} ]] &&
      (($(date +%s) - $(date -d "$renewed" +%s) <= ${duration:-15} + 5)); then
      installed=true
    fi
  fi
fi

# Policy gatehouse-status lets only the operator write status, and names it in its variable
# `operator` (deploy/admission/status.yaml names deploy/base's ServiceAccount). This operator runs
# with the rights of the kubeconfig's user, so that user is named instead; nothing else changes
# (the operator compares every other byte with what it was built with). Where an operator is
# installed its policies stay as they are: it leads, and this one only stands by.
shipped_operator=system:serviceaccount:gatehouse-system:gatehouse
if $installed; then
  log "an operator is installed or running in $lease_namespace: leaving the installed admission policies as they are (that operator writes status)"
else
  user=$(kubectl auth whoami -o jsonpath='{.status.userInfo.username}')
  [[ -n $user ]] || { log "error: kubectl auth whoami printed no username"; exit 1; }
  # The username goes into a CEL string literal inside YAML: refuse what would need escaping.
  if [[ $user == *[\'\"\\\|\&]* ]]; then
    log "error: username '$user' contains a quote, backslash, | or &; run with a kubeconfig of another user"
    exit 1
  fi
  # The org chart (OrgChart gatehouse) that policy gatehouse-requester-manager reads; applying it
  # keeps the entries an earlier run or HR sync added.
  kubectl apply --server-side -f deploy/base/org-chart.yaml >/dev/null
  log "installing the approval admission policies and approver roles (deploy/admission; status written by '$user') ..."
  kubectl kustomize deploy/admission/ | sed "s|'$shipped_operator'|'$user'|" |
    kubectl apply --server-side --force-conflicts -f - >/dev/null
fi
if $local_plane; then
  log "installing demo namespaces and requester rights (examples/setup.yaml) ..."
  kubectl apply --server-side -f examples/setup.yaml >/dev/null
fi
log "installing example policies ..."
kubectl apply --server-side -f examples/access-policy.yaml -f examples/sharing-policy.yaml >/dev/null

# Beside an installed or running operator, join the election, so that this one never acts beside
# it: it stands by while that one leads. Elsewhere it is the only operator and acts at once.
if $installed; then
  log "joining leader election (Lease gatehouse-operator in $lease_namespace); the installed operator keeps leading and this one stands by"
  election=--leader-election=true
else
  election=--leader-election=false
fi
metrics_address=${GATEHOUSE_METRICS_ADDRESS:-127.0.0.1:8080}

cat >&2 <<MSG

Gatehouse is starting in the foreground (Ctrl-C stops it). In another terminal:

  export KUBECONFIG=$KUBECONFIG
  kubectl get gatehouse                                  # policies and requests
  curl -s http://$metrics_address/metrics                # gatehouse_* metrics; /healthz, /readyz
MSG
if $local_plane; then
  cat >&2 <<'MSG'
  kubectl --context alice apply -f examples/access-request.yaml
  kubectl get ar -n payments                             # Pending, waiting for manager,data-owner
  kubectl --context bob annotate ar/alice-db-read -n payments approve.gatehouse.dev/manager=bob
  kubectl --context carol annotate ar/alice-db-read -n payments approve.gatehouse.dev/data-owner=carol
  kubectl get ar -n payments                             # Active, with its expiry
  kubectl auth can-i list configmaps -n payments --as alice
  kubectl describe ar alice-db-read -n payments          # conditions and Events: the audit trail
  kubectl --context erin apply -f examples/data-sharing-agreement.yaml
  kubectl get dsa -n orders

MSG
else
  cat >&2 <<'MSG'
  kubectl apply -f examples/access-request.yaml          # as the user named in spec.requester
  kubectl get ar -n payments

MSG
fi
# The operator keeps the key that seals activation windows (Secret gatehouse-seal-key) in its own
# namespace. Without an installed operator that is a namespace of this local run's own, so that its
# existence never looks like an installation to the next run.
operator_namespace=$lease_namespace
if ! $installed; then
  operator_namespace=gatehouse-local
  kubectl create namespace "$operator_namespace" --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
fi
exec cargo run --quiet --bin gatehouse -- run --log-format text "$election" --metrics-address="$metrics_address" --namespace="$operator_namespace"
