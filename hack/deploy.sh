#!/usr/bin/env bash
# Applies config/default (CRD + operator) with the operator image replaced by $2, or
# deletes the operator only (config/operator): deleting the CRD would delete every
# K3sCluster, which is `make uninstall`'s job, not undeploy's. No kustomize binary is
# needed: kubectl's built-in kustomize renders an overlay made on the fly.
set -euo pipefail
action="${1:?usage: deploy.sh apply|delete IMAGE}"
image="${2:?usage: deploy.sh apply|delete IMAGE}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
overlay="$(mktemp -d "$root/config/.deploy-XXXXXX")"
trap 'rm -rf "$overlay"' EXIT INT TERM
base=../default
[ "$action" = delete ] && base=../operator
# config/manager names the image mesosk3s/operator; replace that name.
cat > "$overlay/kustomization.yaml" <<YAML
resources:
  - $base
images:
  - name: mesosk3s/operator
    newName: ${image%:*}
    newTag: ${image##*:}
YAML
case "$action" in
  apply) kubectl apply --server-side -k "$overlay" ;;
  delete) kubectl delete --ignore-not-found -k "$overlay" ;;
  *) echo "unknown action $action" >&2; exit 2 ;;
esac
