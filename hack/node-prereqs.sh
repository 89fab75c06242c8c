#!/bin/sh
# Installs the Debian packages a real K3s agent needs on this kind of machine (see
# hack/nodecheck/RECIPE.md): containerd (K3s execs it from PATH: the cmd/server build of K3s
# embeds none), runc, the CNI plugins, iptables (kube-proxy, flannel), busybox-static (the
# one binary of the local test image), plus util-linux (unshare, nsenter, flock), iproute2
# (ip) and curl (Mesos runs HTTP health checks with it, src/checks/checker_process.cpp, and
# so does the emulator) when missing.
#
# Idempotent: asks apt only for what dpkg does not list as installed, and runs
# `apt-get update` only when something has to be installed. Silent unless something fails
# or -v is given (or NODE_PREREQS_VERBOSE=1). Safe to run concurrently: callers serialise
# on a flock, and apt itself waits for dpkg's lock instead of failing.
set -eu

verbose="${NODE_PREREQS_VERBOSE:-0}"
[ "${1:-}" = "-v" ] && verbose=1

packages="containerd runc containernetworking-plugins iptables busybox-static util-linux iproute2 curl"
lock="${NODE_PREREQS_LOCK:-/run/lock/mesosk3s-node-prereqs.lock}"

missing() {
  for p in $packages; do
    s="$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)"
    [ "$s" = "ii " ] || printf '%s ' "$p"
  done
}

[ -z "$(missing)" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "node-prereqs: missing packages: $(missing)(run as root to install them)" >&2
  exit 1
fi

mkdir -p "$(dirname "$lock")"
exec 9>"$lock"
flock 9
# Another run may have installed everything while this one waited for the lock.
todo="$(missing)"
[ -z "$todo" ] && exit 0

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
run() {
  if [ "$verbose" = 1 ]; then
    "$@"
  elif ! "$@" >"$out" 2>&1; then
    cat "$out" >&2
    return 1
  fi
}
apt_opts="-o DPkg::Lock::Timeout=600 -o APT::Get::Assume-Yes=true"
[ "$verbose" = 1 ] && echo "node-prereqs: installing $todo" >&2
# shellcheck disable=SC2086
run apt-get $apt_opts -q update
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive run apt-get $apt_opts -q install --no-install-recommends $todo
left="$(missing)"
if [ -n "$left" ]; then
  echo "node-prereqs: still missing after apt-get install: $left" >&2
  exit 1
fi
