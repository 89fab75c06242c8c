#!/usr/bin/env bash
# Builds the static K3s binary from source through the Go module proxy, because K3s
# release downloads cannot be fetched here. The binary is what the playground's Binary
# runtime hands to the Mesos emulator as a file:// URL, and what hack/k3scheck runs.
# It is cached as bin/k3s and reused; the script prints its path on stdout (logs go to
# stderr), so callers can write K3S="$(hack/build-k3s.sh)". `hack/build-k3s.sh previous`
# builds the older K3s the upgrade tests start from, as bin/k3s-v1.25.2+k3s1.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" = "previous" ]; then
  # The K3s the upgrade tests start from: commit 934d01361402 (2022-10-07), after the
  # v1.25.2+k3s1 tag, whose go.mod pins Kubernetes v1.25.2-k3s1; the proxy serves it under
  # this pseudo-version (../shared/k3s-versions.md). It calls itself v1.25.2+k3s1, the
  # release its Kubernetes is: a real patch upgrade to v1.25.4 below.
  K3S_MODULE_VERSION="v1.25.3-0.20221007175439-934d01361402"
  K3S_VERSION="v1.25.2+k3s1"
  out="${K3S_BINARY:-$root/bin/k3s-$K3S_VERSION}"
else
  # v1.25.4+k3s1 is the newest K3s the module proxy serves; it only knows it under this
  # pseudo-version (the release tag carries "+k3s1", which is not a valid module version).
  K3S_MODULE_VERSION="${K3S_MODULE_VERSION:-v1.25.5-0.20221115215439-0dc63334c0db}"
  K3S_VERSION="${K3S_VERSION:-v1.25.4+k3s1}"
  out="${K3S_BINARY:-$root/bin/k3s}"
fi
mkdir -p "$(dirname "$out")"
log() { echo "build-k3s: $*" >&2; }

# make dev and make test may both ask for the binary at once: build it only once.
exec 9>"$out.lock"
flock 9

# cgo links libseccomp (runc's seccomp support) and the system SQLite (tag libsqlite3)
# statically, so their development packages must be present.
ensure_build_deps() {
  pkg-config --exists libseccomp sqlite3 2>/dev/null && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "missing C libraries: install the Debian packages libseccomp-dev libsqlite3-dev pkg-config (as root: apt-get install -y libseccomp-dev libsqlite3-dev pkg-config)"
    exit 1
  fi
  log "installing libseccomp-dev libsqlite3-dev pkg-config"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    libseccomp-dev libsqlite3-dev pkg-config >&2
}

# The -X variables K3s's own scripts/build sets: without them `k3s --version` says
# "dev (HEAD)" and the API server reports v0.0.0 to kubectl and to the operator.
version_ldflags() {
  local commit="$1" date; date="$(date -u '+%Y-%m-%dT%H:%M:%SZ')"
  echo "-X github.com/k3s-io/k3s/pkg/version.Version=$K3S_VERSION"
  echo "-X github.com/k3s-io/k3s/pkg/version.GitCommit=${commit:0:8}"
  local pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    echo "-X $pkg.gitVersion=$K3S_VERSION -X $pkg.gitCommit=$commit"
    echo "-X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
}

build_k3s() {
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "building k3s $K3S_VERSION (3.5 to 6 min on 2 cores, plus module downloads the first time)"
  local info gomod commit
  info="$(GOSUMDB=off go mod download -json "github.com/k3s-io/k3s@$K3S_MODULE_VERSION")"
  gomod="$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' <<<"$info")"
  commit="$(sed -n 's/.*"Hash": "\(.*\)".*/\1/p' <<<"$info")"
  # replace directives only apply in the main module, so a module that merely requires
  # k3s would build against upstream Kubernetes, containerd and etcd instead of the k3s-io
  # forks it needs: every replace of k3s's go.mod is repeated here. The module proxy
  # answers 403 for inet.af/tcpproxy (its vanity domain is gone); the same commit is
  # served under its GitHub path.
  {
    echo "module k3sbuild"
    echo "go 1.26"
    echo "require github.com/k3s-io/k3s $K3S_MODULE_VERSION"
    awk '/^replace \($/ { block = 1; next }
         block && /^\)/ { block = 0; next }
         block { sub(/\/\/.*/, ""); if (NF) print "replace " $0; next }
         /^replace / { sub(/\/\/.*/, ""); print }' "$gomod"
    echo "replace inet.af/tcpproxy => github.com/inetaf/tcpproxy v0.0.0-20200125044825-b6bb9b5b8252"
  } >"$work/go.mod"
  if grep -q '=> \.' "$work/go.mod"; then
    log "k3s's go.mod has a local replace this script cannot repeat:"; grep '=> \.' "$work/go.mod" >&2
    exit 1
  fi
  log "$(grep -c '^replace' "$work/go.mod") replace directives"
  # Tags and linker flags as in k3s's scripts/build with STATIC_BUILD=true.
  local tags="static_build libsqlite3 apparmor seccomp netcgo osusergo providerless urfave_cli_no_docs"
  local ldflags
  ldflags="$(version_ldflags "$commit" | tr '\n' ' ') -w -s -extldflags '-static -lm -ldl -lz -lpthread'"
  # GOSUMDB=off: sum.golang.org answers 404 for some k3s-io fork versions the proxy
  # serves (e.g. github.com/k3s-io/containerd v1.5.13-k3s2), so go get cannot verify them.
  (cd "$work" \
    && GOSUMDB=off GOFLAGS=-mod=mod go get "github.com/k3s-io/k3s/cmd/server@$K3S_MODULE_VERSION" >&2 \
    && GOSUMDB=off CGO_ENABLED=1 go build -tags "$tags" -ldflags "$ldflags" -o "$out.tmp" \
         github.com/k3s-io/k3s/cmd/server >&2)
  # Named k3s, the multicall main takes its subcommand from the first argument
  # (`k3s server ...`); argv[0] only matters for kubectl/crictl/ctr/containerd.
  mv "$out.tmp" "$out"
}

if [ ! -x "$out" ]; then
  ensure_build_deps
  start=$SECONDS
  build_k3s
  log "built $out in $((SECONDS - start))s"
fi
echo "$out"
