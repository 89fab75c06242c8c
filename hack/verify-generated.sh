#!/usr/bin/env bash
# Fails when the committed generated files (deepcopy, CRD, RBAC, and the Helm chart's
# copies of the CRD and RBAC) differ from what the generators produce now. It
# regenerates them in place, so after a failure the tree holds the fresh files, ready to
# review and commit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
generated=(api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml charts/mesosk3s/files)
before="$(mktemp -d)"
trap 'rm -rf "$before"' EXIT
for f in "${generated[@]}"; do
  mkdir -p "$before/$(dirname "$f")"
  [ -e "$f" ] && cp -r "$f" "$before/$f"
done
make --no-print-directory generate manifests >/dev/null
stale=0
for f in "${generated[@]}"; do
  if ! diff -r "$before/$f" "$f" >/dev/null 2>&1; then
    echo "stale generated file: $f" >&2
    stale=1
  fi
done
if [ "$stale" = 1 ]; then
  echo "generated files were out of date; they have been regenerated: review and commit them" >&2
  exit 1
fi
