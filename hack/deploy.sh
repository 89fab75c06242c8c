#!/usr/bin/env bash
# Applies config/default (CRD + operator) with the operator image replaced by $2, prints
# it (render: what `make release-manifest` writes to dist/install.yaml), or deletes the
# operator only (config/operator): deleting the CRD would delete every K3sCluster, which
# is `make uninstall`'s job, not undeploy's. No kustomize binary is needed: kubectl's
# built-in kustomize renders an overlay made on the fly.
#
# MESOS_MASTER, when set, replaces the Deployment's default Mesos master (the MESOS_MASTER
# environment variable the operator reads for clusters without spec.mesos.master).
set -euo pipefail
usage="usage: [MESOS_MASTER=...] deploy.sh apply|render|delete IMAGE"
action="${1:?$usage}"
image="${2:?$usage}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$image" in
  *@sha256:*) name="${image%@*}" digest="${image#*@}" tag="" ;;
  *) name="$image" digest="" tag="" ;;
esac
# A tag is what follows the last colon, unless that colon belongs to a registry port.
if [ -z "$digest" ] && [[ "${name##*/}" == *:* ]]; then
  tag="${name##*:}"
  name="${name%:*}"
fi
if [ -z "$tag" ] && [ -z "$digest" ]; then
  echo "deploy.sh: image $image has neither a tag nor a digest" >&2
  exit 2
fi
if [ -n "${MESOS_MASTER:-}" ] && ! [[ "$MESOS_MASTER" =~ ^[A-Za-z0-9.:/,_@%+-]+$ ]]; then
  echo "deploy.sh: MESOS_MASTER=$MESOS_MASTER is not host:port or a URL (comma-separated for several)" >&2
  exit 2
fi
overlay="$(mktemp -d "$root/config/.deploy-XXXXXX")"
trap 'rm -rf "$overlay"' EXIT INT TERM
base=../default
[ "$action" = delete ] && base=../operator
# config/manager names the image mesosk3s/operator; replace that name.
{
  echo "resources:"
  echo "  - $base"
  echo "images:"
  echo "  - name: mesosk3s/operator"
  echo "    newName: $name"
  [ -n "$tag" ] && echo "    newTag: \"$tag\""
  [ -n "$digest" ] && echo "    digest: $digest"
  if [ -n "${MESOS_MASTER:-}" ]; then
    cat <<YAML
patches:
  - target: {kind: Deployment, name: mesosk3s-controller-manager}
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: mesosk3s-controller-manager
      spec:
        template:
          spec:
            containers:
              - name: manager
                env:
                  - name: MESOS_MASTER
                    value: "$MESOS_MASTER"
YAML
  fi
} > "$overlay/kustomization.yaml"
case "$action" in
  apply) kubectl apply --server-side -k "$overlay" ;;
  render) kubectl kustomize "$overlay" ;;
  delete) kubectl delete --ignore-not-found -k "$overlay" ;;
  *) echo "unknown action $action; $usage" >&2; exit 2 ;;
esac
