#!/usr/bin/env bash
# Applies (or deletes) config/default with the operator image replaced by $2, without
# needing a kustomize binary: kubectl's built-in kustomize renders an overlay made on the fly.
set -euo pipefail
action="${1:?usage: deploy.sh apply|delete IMAGE}"
image="${2:?usage: deploy.sh apply|delete IMAGE}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
overlay="$(mktemp -d "$root/config/.deploy-XXXXXX")"
trap 'rm -rf "$overlay"' EXIT
cat > "$overlay/kustomization.yaml" <<YAML
resources:
  - ../default
images:
  - name: controller
    newName: ${image%:*}
    newTag: ${image##*:}
YAML
case "$action" in
  apply) kubectl apply --server-side -k "$overlay" ;;
  delete) kubectl delete --ignore-not-found -k "$overlay" ;;
  *) echo "unknown action $action" >&2; exit 2 ;;
esac
