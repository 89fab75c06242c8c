#!/bin/sh
# agent-task.sh — runs one K3s agent as a Mesos task, so that several agents (of one or of
# different clusters) share a machine and a kill of the task leaves no process and no mount
# behind. The recipe, every flag and what was measured: hack/nodecheck/RECIPE.md.
#
# Run by Mesos (command executor: /bin/sh -c '... sh agent-task.sh') as root, in the task's
# cgroup. Environment:
#   MESOS_SANDBOX      this run's sandbox (set by Mesos)
#   DATA_DIR           the task's stable data directory (same on every run: the node's disk)
#   K3S                the k3s binary (default: $MESOS_SANDBOX/k3s, as the fetcher leaves it)
#   K3S_URL            server URL, e.g. https://10.77.0.1:6443
#   K3S_TOKEN          the agent join token (read by k3s from the environment, never argv)
#   K3S_NODE_NAME      node name (stable across runs)
#   NODE_IP            node IP (optional; default: K3s picks the default route's address)
#   PORT_KUBELET PORT_KUBELET_HEALTHZ PORT_KUBEPROXY_METRICS PORT_KUBEPROXY_HEALTHZ
#   PORT_LB PORT_CRI_STREAM   ports from the offer, one per listener of the agent;
#                      PORT_KUBELET must be the same on every run of a node (K3s's tunnel
#                      reads it once, from the Node object, at agent start)
#   PAUSE_IMAGE        optional CRI sandbox image
#   IMAGES_DIR         image archives to import (default: $MESOS_SANDBOX/images)
#   CNI_BIN_DIR        optional: prepended to PATH (K3s takes its CNI bin dir from the
#                      location of host-local; needed when k3s has no bundled CNI plugins)
#   FLANNEL_CNI_CONF   optional: --flannel-cni-conf (a conflist for an older flannel plugin)
# Arguments are passed on to `k3s agent`.
set -eu

if [ "${MESOSK3S_AGENT_NS:-}" != "$$" ]; then
  # Stage 1, in the host's mount namespace: re-run this script in a private mount
  # namespace (same PID: unshare execs). Mounts made there propagate nowhere and vanish
  # with the last process of the task; host mounts still propagate in (slave).
  export MESOSK3S_AGENT_NS="$$"
  exec unshare --mount --propagation slave -- /bin/sh "$0" "$@"
fi
unset MESOSK3S_AGENT_NS

: "${MESOS_SANDBOX:?}" "${DATA_DIR:?}" "${K3S_URL:?}" "${K3S_TOKEN:?}" "${K3S_NODE_NAME:?}"
: "${PORT_KUBELET:?}" "${PORT_KUBELET_HEALTHZ:?}" "${PORT_KUBEPROXY_METRICS:?}"
: "${PORT_KUBEPROXY_HEALTHZ:?}" "${PORT_LB:?}" "${PORT_CRI_STREAM:?}"
K3S="${K3S:-$MESOS_SANDBOX/k3s}"
log() { echo "agent-task: $*" >&2; }

# A Mesos agent started by systemd may leak INVOCATION_ID into tasks: K3s would then pick
# the systemd cgroup driver (no systemd scope exists for the task). NOTIFY_SOCKET: same.
unset INVOCATION_ID NOTIFY_SOCKET

# --- cgroups: the task's own cgroup becomes the kubelet's cgroup root, so pods are
# children of the task and die, and are accounted, with it. Mesos' launcher tracks and
# kills a container through the freezer hierarchy, so that path is the task's cgroup.
cg="$(sed -n 's/^[0-9]*:freezer:\(.*\)$/\1/p' /proc/self/cgroup)"
if [ -z "$cg" ] || [ "$cg" = / ]; then
  log "not in a task cgroup (freezer: '${cg}'): refusing to put pods at the hierarchy root"
  exit 1
fi
# The kubelet wants its cgroup root in cpu, cpuacct, cpuset, memory, pids and
# name=systemd. Mesos creates the task's cgroup only in the hierarchies of its enabled
# isolators; create the path where it is missing (cpuset levels need cpus and mems).
for h in cpu cpuacct cpuset memory pids systemd; do
  d="/sys/fs/cgroup/$h"
  [ -d "$d" ] || continue
  p="$d"
  for c in $(echo "${cg#/}" | tr / ' '); do
    parent="$p"
    p="$p/$c"
    [ -d "$p" ] && continue
    mkdir "$p"
    if [ "$h" = cpuset ]; then
      cat "$parent/cpuset.cpus" >"$p/cpuset.cpus"
      cat "$parent/cpuset.mems" >"$p/cpuset.mems"
    fi
  done
done

# --- the host-global paths K3s, the kubelet and containerd hard-code, made per task.
# Volatile state (the node's /run) on tmpfs, vanishing with the task:
#   /run/k3s        containerd state dir + socket (/run/k3s/containerd), shim bundles,
#                   container rootfs mounts
#   /run/containerd shim sockets (/run/containerd/s/), runc state (/run/containerd/runc)
#   /run/netns      CNI network namespace mounts of the pods (cni-<uuid>)
#   /run/flannel    flannel's subnet.env (read by the flannel CNI plugin)
#   /var/lib/cni    host-local IP reservations, CNI result cache, flannel plugin scratch:
#                   stale after a kill (the pods are gone), so they must not survive it
# The node's disk, on $DATA_DIR (kept across runs like a rebooted node's disk):
#   /etc/rancher    node password (/etc/rancher/node/password: a relaunch under the same
#                   node name must present the same one) and it hides the host's
#                   /etc/rancher/k3s/{config.yaml,registries.yaml}
#   /var/lib/kubelet  the kubelet's root (pod volumes, plugin sockets); the kubelet
#                   bind-mounts it on itself and makes it rshared, here inside the task
#   /var/log/pods, /var/log/containers  container logs (written by containerd) and the
#                   kubelet's links to them: on the host's, a killed agent's pod logs
#                   would stay forever
for d in /run/k3s /run/containerd /run/netns /run/flannel /var/lib/cni; do
  mkdir -p "$d"
  mount -t tmpfs -o mode=0755,nosuid,nodev "mk3s-$K3S_NODE_NAME" "$d"
done
for pair in rancher:/etc/rancher kubelet:/var/lib/kubelet \
  log/pods:/var/log/pods log/containers:/var/log/containers; do
  src="$DATA_DIR/${pair%%:*}"
  dst="${pair#*:}"
  mkdir -p "$src" "$dst"
  mount --bind "$src" "$dst"
done

k3sdata="$DATA_DIR/k3s"

# --- containerd config: K3s renders <data-dir>/agent/etc/containerd/config.toml from this
# template (Go text/template over K3s's ContainerdConfig) on every start. Own ports only:
# the CRI stream server is the one listener K3s has no flag for.
restrict_oom=false
if ! sh -c 'echo -998 >/proc/self/oom_score_adj' 2>/dev/null; then
  # No CAP_SYS_RESOURCE: runc could not apply the pods' negative oom_score_adj and every
  # sandbox would fail ("can't get final child's PID from pipe: EOF").
  restrict_oom=true
fi
mkdir -p "$k3sdata/agent/etc/containerd"
cat >"$k3sdata/agent/etc/containerd/config.toml.tmpl" <<EOF
version = 2

[plugins."io.containerd.internal.v1.opt"]
  path = "{{ .NodeConfig.Containerd.Opt }}"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "$PORT_CRI_STREAM"
  enable_unprivileged_ports = {{ .EnableUnprivileged }}
  enable_unprivileged_icmp = {{ .EnableUnprivileged }}
  restrict_oom_score_adj = $restrict_oom
{{- if .NodeConfig.AgentConfig.PauseImage }}
  sandbox_image = "{{ .NodeConfig.AgentConfig.PauseImage }}"
{{- end }}

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "{{ .NodeConfig.AgentConfig.Snapshotter }}"
  disable_snapshot_annotations = true

{{- if not .NodeConfig.NoFlannel }}
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{{ .NodeConfig.AgentConfig.CNIBinDir }}"
  conf_dir = "{{ .NodeConfig.AgentConfig.CNIConfDir }}"
{{- end }}

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = {{ .SystemdCgroup }}
EOF

# --- images shipped with the task (fetched into the sandbox): K3s imports every archive
# in <data-dir>/agent/images into containerd at start (air-gap import).
images="${IMAGES_DIR:-$MESOS_SANDBOX/images}"
if [ -d "$images" ]; then
  mkdir -p "$k3sdata/agent/images"
  for f in "$images"/*.tar; do
    [ -e "$f" ] && cp -f "$f" "$k3sdata/agent/images/"
  done
fi

if [ -n "${CNI_BIN_DIR:-}" ]; then
  PATH="$CNI_BIN_DIR:$PATH"
fi
export PATH

set -- \
  --data-dir "$k3sdata" \
  --server "$K3S_URL" \
  --node-name "$K3S_NODE_NAME" \
  --lb-server-port "$PORT_LB" \
  --kubelet-arg="port=$PORT_KUBELET" \
  --kubelet-arg="healthz-port=$PORT_KUBELET_HEALTHZ" \
  --kubelet-arg="cgroup-root=$cg" \
  --kube-proxy-arg="metrics-bind-address=127.0.0.1:$PORT_KUBEPROXY_METRICS" \
  --kube-proxy-arg="healthz-bind-address=127.0.0.1:$PORT_KUBEPROXY_HEALTHZ" \
  "$@"
# The kubelet gets --node-ip from K3s only when it differs from the default route's
# address; without it the kubelet resolves the node name through DNS before registering:
# where that lookup times out, registration waits 10 s and Ready ~25 s more (measured).
[ -n "${NODE_IP:-}" ] && set -- "$@" --node-ip "$NODE_IP" --kubelet-arg="node-ip=$NODE_IP"
[ -n "${PAUSE_IMAGE:-}" ] && set -- "$@" --pause-image "$PAUSE_IMAGE"
[ -n "${FLANNEL_CNI_CONF:-}" ] && set -- "$@" --flannel-cni-conf "$FLANNEL_CNI_CONF"
log "cgroup $cg, restrict_oom_score_adj=$restrict_oom, exec $K3S agent $*"
exec "$K3S" agent "$@"
