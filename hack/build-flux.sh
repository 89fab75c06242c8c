#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from source through the Go
# module proxy (release binaries and images cannot be fetched here), for the GitOps test
# harness in hack/gitops. Their CRDs are copied from the modules next to them:
#   bin/flux/source-controller  bin/flux/kustomize-controller  bin/flux/crds/*.yaml
# The directory is cached and reused while the pinned versions stay the same; the script
# prints its path on stdout (logs go to stderr), so callers can write
# FLUX_ASSETS="$(hack/build-flux.sh)".
set -euo pipefail

# v1.9.6 of both is the newest the module proxy serves that builds with Go 1.26: v1.10.x
# declares `go 1.27.0`. (Flux v2.9's controllers; they build against k8s.io v0.36.)
SOURCE_CONTROLLER_VERSION="${SOURCE_CONTROLLER_VERSION:-v1.9.6}"
KUSTOMIZE_CONTROLLER_VERSION="${KUSTOMIZE_CONTROLLER_VERSION:-v1.9.6}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${FLUX_ASSETS_DIR:-$root/bin/flux}"
mkdir -p "$out"
log() { echo "build-flux: $*" >&2; }

# make test and a developer may both ask for the binaries at once: build them only once.
exec 9>"$out.lock"
flock 9

stamp="source-controller $SOURCE_CONTROLLER_VERSION kustomize-controller $KUSTOMIZE_CONTROLLER_VERSION"

# build_controller NAME VERSION builds github.com/fluxcd/NAME at VERSION into $out/NAME.
build_controller() {
  local name="$1" version="$2" module="github.com/fluxcd/$1"
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building $name $version"
  local gomod; gomod="$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  # replace directives only apply in the main module: each of the controller's is repeated
  # here. Its own API submodule is replaced with `=> ./api`, which a dependent module cannot
  # use; the API module is tagged with the same version, so it is pinned to that.
  {
    echo "module fluxbuild"
    echo "go 1.26"
    echo "require $module $version"
    awk '/^replace \($/ { block = 1; next }
         block && /^\)/ { block = 0; next }
         block { sub(/\/\/.*/, ""); if (NF) print "replace " $0; next }
         /^replace / { sub(/\/\/.*/, ""); print }' "$gomod" \
      | sed -E "s#^replace ($module/api) => \./api\$#replace \1 => \1 $version#"
    # The module proxy answers 403 ("This module version is not available") for
    # github.com/fluxcd/pkg/artifact v0.18.2 and v0.18.3, which source-controller v1.9.6
    # requires; v0.18.1 is served. Upstream, v0.18.1 -> v0.18.2 changed only a dependency
    # in its go.mod (v0.18.3 could not be compared). kustomize-controller does not use it.
    if [ "$name" = source-controller ]; then
      echo "replace github.com/fluxcd/pkg/artifact => github.com/fluxcd/pkg/artifact v0.18.1"
    fi
  } >"$work/go.mod"
  if grep -q '=> \.' "$work/go.mod"; then
    log "$name's go.mod has a local replace this script cannot repeat:"; grep '=> \.' "$work/go.mod" >&2
    exit 1
  fi
  log "$(grep -c '^replace' "$work/go.mod") replace directives"
  # Static, stripped, as the controllers' Makefiles build them.
  (cd "$work" \
    && GOFLAGS=-mod=mod go get "$module@$version" >&2 \
    && CGO_ENABLED=0 go build -tags netgo,osusergo -ldflags '-s -w' -o "$out/$name.tmp" "$module" >&2)
  mv "$out/$name.tmp" "$out/$name"
}

# copy_crds NAME VERSION copies the module's config/crd/bases into $out/crds.
copy_crds() {
  local dir; dir="$(go mod download -json "github.com/fluxcd/$1@$2" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  cp "$dir"/config/crd/bases/*.yaml "$out/crds/"
}

if [ "$(cat "$out/versions" 2>/dev/null)" != "$stamp" ] \
    || [ ! -x "$out/source-controller" ] || [ ! -x "$out/kustomize-controller" ]; then
  rm -rf "$out/crds" "$out/versions"
  mkdir -p "$out/crds"
  start=$SECONDS
  build_controller source-controller "$SOURCE_CONTROLLER_VERSION"
  log "built source-controller in $((SECONDS - start))s"
  start=$SECONDS
  build_controller kustomize-controller "$KUSTOMIZE_CONTROLLER_VERSION"
  log "built kustomize-controller in $((SECONDS - start))s"
  copy_crds source-controller "$SOURCE_CONTROLLER_VERSION"
  copy_crds kustomize-controller "$KUSTOMIZE_CONTROLLER_VERSION"
  chmod u+w "$out"/crds/*.yaml
  echo "$stamp" >"$out/versions"
fi
echo "$out"
