#!/usr/bin/env bash
# Installs the operator into the local plane's cluster as a user would, on a plane started with
# NODE=1 (local-up.sh): builds the image from the Dockerfile (image/build.sh; cached by the hash of
# its inputs), imports it into the node's containerd, and runs `kubectl apply -k` of an overlay on
# deploy/ that changes only what differs here:
#   - the image: poolpilot.local/poolpilot:<hash> instead of the published one
#   - --prometheus-url: the plane's Prometheus (on the bridge's address, which pods reach)
#   - KUBERNETES_SERVICE_HOST/PORT: the API server on the bridge's address; no kube-proxy routes
#     the `kubernetes` Service's ClusterIP here (test/controlplane/node.sh)
# Then waits until the Deployment is rolled out. Prints the image name.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${POOLPILOT_LOCAL:-$root/.local}
log() { echo "in-cluster: $*" >&2; }

[[ -f $state/env ]] || { log "no local plane in $state: run 'make local-up NODE=1'"; exit 1; }
# shellcheck disable=SC1091
source "$state/env"
[[ -n ${CONTAINERD_ADDRESS:-} ]] || { log "the plane in $state has no node: run 'make local-down' and 'make local-up NODE=1'"; exit 1; }

{ read -r image; read -r archive; } < <(bash "$root/image/build.sh" archive operator)
ctr --address "$CONTAINERD_ADDRESS" --namespace k8s.io images import "$archive" >/dev/null
log "imported $image into the node's containerd"

overlay=$state/in-cluster
mkdir -p "$overlay"
hostport=${KUBE_APISERVER_URL#https://}
# args/2 is deploy/'s --prometheus-url (args: run, --leader-elect, --prometheus-url=…).
cat >"$overlay/kustomization.yaml" <<YAML
# Written by test/controlplane/in-cluster.sh: deploy/ as released, but for what differs here.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$(realpath --relative-to="$overlay" "$root/deploy")]
images:
  - {name: ghcr.io/poolpilot/poolpilot, newName: ${image%:*}, newTag: '${image##*:}'}
patches:
  - target: {kind: Deployment, name: poolpilot}
    patch: |
      - {op: replace, path: /spec/template/spec/containers/0/args/2, value: "--prometheus-url=$PROMETHEUS_URL"}
      - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: KUBERNETES_SERVICE_HOST, value: "${hostport%:*}"}}
      - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: KUBERNETES_SERVICE_PORT, value: "${hostport##*:}"}}
YAML
if ! kubectl kustomize "$overlay" | grep -qxF -- "        - --prometheus-url=$PROMETHEUS_URL"; then
  log "the overlay did not set --prometheus-url (deploy/core/deployment.yaml's args changed?): see $overlay"
  exit 1
fi
kubectl --kubeconfig "$KUBECONFIG" apply -k "$overlay" >&2
kubectl --kubeconfig "$KUBECONFIG" --namespace poolpilot-system rollout status deployment/poolpilot --timeout 180s >&2
echo "$image"
