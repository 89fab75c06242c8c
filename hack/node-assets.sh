#!/usr/bin/env bash
# Builds (once) what real K3s agents need on this kind of machine besides Debian's packages
# (hack/node-prereqs.sh), into bin/node/, and prints that directory:
#   cni/             Debian's CNI plugins plus the flannel plugin, which Debian's
#                    containernetworking-plugins 1.1.1 no longer has and which K3s's
#                    embedded flannel calls; K3s takes its CNI bin dir from where host-local
#                    is on its PATH (the release binary bundles all of them; the cmd/server
#                    build of bin/k3s bundles none).
#   flannel.conflist the flannel conflist for that plugin, which speaks CNI <= 0.4.0 (K3s's
#                    own says 1.0.0): k3s agent --flannel-cni-conf.
#   busybox.tar      one busybox image (docker.io/mesosk3s/busybox:1.35) that serves as the
#                    pod sandbox image and the demo workload (hack/mkimage.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${NODE_ASSETS_DIR:-$root/bin/node}"
# v0.9.1 of containernetworking/plugins is the last with plugins/meta/flannel.
FLANNEL_PLUGIN_VERSION=v0.9.1
IMAGE_REF=docker.io/mesosk3s/busybox:1.35
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

if [ ! -x "$out/cni/flannel" ]; then
  mkdir -p "$out/cni"
  for p in /usr/lib/cni/*; do
    [ -e "$p" ] || { echo "node-assets: no CNI plugins in /usr/lib/cni: run hack/node-prereqs.sh" >&2; exit 1; }
    ln -sf "$p" "$out/cni/"
  done
  GOBIN="$out/cni" CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install "github.com/containernetworking/plugins/plugins/meta/flannel@$FLANNEL_PLUGIN_VERSION" >&2
fi
cat > "$out/flannel.conflist" <<'JSON'
{
  "name": "cbr0",
  "cniVersion": "0.4.0",
  "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": true, "forceAddress": true, "isDefaultGateway": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
[ -s "$out/busybox.tar" ] || "$root/hack/mkimage.sh" "$out/busybox.tar" "$IMAGE_REF"
echo "$out"
