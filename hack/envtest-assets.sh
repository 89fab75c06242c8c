#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver + etcd) from source through the Go
# module proxy, because prebuilt envtest binaries cannot be downloaded here. The binaries
# are cached under bin/envtest/ and reused; the script prints that directory, which is
# what KUBEBUILDER_ASSETS must point at.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.1}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.9}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${ENVTEST_ASSETS_DIR:-$root/bin/envtest}"
mkdir -p "$out"
log() { echo "envtest-assets: $*" >&2; }

# kubectl is not needed by envtest here: tests use the kubectl on PATH.
build_kube_apiserver() {
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building kube-apiserver $KUBE_VERSION (first build takes ~7 min)"
  local staging="v0${KUBE_VERSION#v1}"   # v1.37.1 -> v0.37.1
  # k8s.io/kubernetes refers to its staging repos with `replace => ./staging/...`, which
  # a dependent module cannot use, so every one of them is pinned to the matching v0.x tag.
  local gomod; gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  {
    echo "module envtestbuild"
    echo "go 1.26"
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" \
      | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } > "$work/go.mod"
  (cd "$work" && GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" >&2 \
     && CGO_ENABLED=0 go build -o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
}

build_etcd() {
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building etcd $ETCD_VERSION"
  local mods=(api/v3 client/pkg/v3 client/v3 pkg/v3 server/v3)
  {
    echo "module etcdbuild"
    echo "go 1.26"
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    for m in "${mods[@]}"; do echo "replace go.etcd.io/etcd/$m => go.etcd.io/etcd/$m $ETCD_VERSION"; done
  } > "$work/go.mod"
  (cd "$work" && GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 \
     && CGO_ENABLED=0 go build -o "$out/etcd" go.etcd.io/etcd/server/v3)
}

[ -x "$out/kube-apiserver" ] || build_kube_apiserver
[ -x "$out/etcd" ] || build_etcd
echo "$out"
