package k3s

import (
	"errors"
	"time"
)

// Port names an agent asks for: every listener of the agent takes its port from the task
// runner, so agents of several clusters can share a host. K3s has no flag for the CRI
// stream server's port; the containerd config template carries it.
const (
	PortKubelet          = "kubelet"
	PortKubeletHealthz   = "kubelet-healthz"
	PortKubeProxyMetrics = "kube-proxy-metrics"
	PortKubeProxyHealthz = "kube-proxy-healthz"
	PortLoadBalancer     = "lb"
	PortCRIStream        = "cri-stream"
	agentHealthGrace     = 300 * time.Second // first start: image import, node registration
	agentHealthInterval  = 10 * time.Second
	agentHealthTimeout   = 5 * time.Second
	agentHealthDelay     = 5 * time.Second
	agentHealthFailures  = 3
)

// agentPorts are the agent's ports, in the order a runner gives them.
var agentPorts = []string{PortKubelet, PortKubeletHealthz, PortKubeProxyMetrics, PortKubeProxyHealthz, PortLoadBalancer, PortCRIStream}

// Agent is a K3s agent (a worker node).
type Agent struct {
	Common
	// ServerURL is the server the agent registers with (--server).
	ServerURL string
	// Token is the token the agent joins with: the agent token (AgentToken).
	Token string
	// PauseImage is the pod sandbox image (--pause-image); empty keeps K3s's default.
	PauseImage string
	// ImageArchives are image archives (shell words, e.g. "$MESOS_SANDBOX"/images-0.tar)
	// imported into the node's containerd at start: air-gapped sites need them.
	ImageArchives []string
}

// Process renders the agent. The script gives K3s a mount namespace of its own in which
// the host-global paths that K3s, containerd, runc and the CNI plugins hard-code are the
// task's: volatile ones on tmpfs (/run/k3s: containerd's state and socket; /run/containerd:
// shim sockets and runc state; /run/netns: the pods' network namespaces; /run/flannel;
// /var/lib/cni: IP reservations), persistent ones from $DATA_DIR (/etc/rancher: the node
// password; /var/lib/kubelet; /var/log/pods and /var/log/containers). Every mount vanishes
// with the task's last process. The kubelet's cgroup root is the task's own cgroup, so the
// pods live, are accounted and die inside the task. Proven on the real binary by
// hack/nodecheck (RECIPE.md).
func (g Agent) Process() (Process, error) {
	errs := g.Common.validate()
	if g.ServerURL == "" {
		errs = append(errs, errors.New("an agent needs the server URL"))
	}
	if g.Token == "" {
		errs = append(errs, errors.New("an agent needs a join token"))
	}
	if err := errors.Join(errs...); err != nil {
		return Process{}, err
	}
	var sc script
	sc.preamble()
	sc.versionCheck(g.Executable, g.Version)
	// A Mesos agent started by systemd may leak INVOCATION_ID into its tasks: K3s would then
	// pick the systemd cgroup driver, for which no systemd scope exists.
	sc.line("unset INVOCATION_ID NOTIFY_SOCKET")
	sc.cgroupRoot()
	sc.privateMounts(map[string]string{
		"/etc/rancher": "rancher", "/var/lib/kubelet": "kubelet",
		"/var/log/pods": "log/pods", "/var/log/containers": "log/containers",
	}, []string{"/run/k3s", "/run/containerd", "/run/netns", "/run/flannel", "/var/lib/cni"})
	sc.containerdTemplate()
	for _, archive := range g.ImageArchives {
		// K3s imports every archive it finds in <data-dir>/agent/images at start.
		sc.line(`mkdir -p "$DATA_DIR/k3s/agent/images"`)
		sc.line(`cp -f `, archive, ` "$DATA_DIR/k3s/agent/images/"`)
	}
	var a args
	a.literal("agent")
	a.addExpr("data-dir", "$DATA_DIR/k3s")
	a.add("server", g.ServerURL)
	a.add("node-name", g.NodeName)
	a.addExpr("lb-server-port", "$"+portVar(PortLoadBalancer))
	a.addExpr("kubelet-arg", "port=$"+portVar(PortKubelet))
	a.addExpr("kubelet-arg", "healthz-port=$"+portVar(PortKubeletHealthz))
	a.addExpr("kubelet-arg", "cgroup-root=$cgroup_root")
	a.addExpr("kube-proxy-arg", "metrics-bind-address=127.0.0.1:$"+portVar(PortKubeProxyMetrics))
	a.addExpr("kube-proxy-arg", "healthz-bind-address=127.0.0.1:$"+portVar(PortKubeProxyHealthz))
	// The node's address is the host's as clients reach it: K3s's egress tunnel maps an
	// address to one node, and the kubelet, without --node-ip, resolves the node name
	// through DNS before it registers (a lookup that timed out here: Ready took 38 s
	// instead of 14 s).
	a = append(a, word{text: `${node_ip:+"--node-ip=$node_ip"} ${node_ip:+"--kubelet-arg=node-ip=$node_ip"}`, expr: true})
	a.add("pause-image", g.PauseImage)
	g.nodeArgs(&a)
	sc.line(`case "${HOST:-}" in *[!0-9.]*|'') node_ip= ;; *) node_ip=$HOST ;; esac`)
	sc.line("exec ", g.Executable, " ", a.shell())
	return Process{
		Script:  inPrivateMountNamespace(sc.String()),
		Env:     g.Env,
		Secrets: map[string][]byte{EnvToken: []byte(g.Token)},
		Ports:   agentPorts,
		// The kubelet's healthz answers once it runs; a refused agent (a node password
		// K3s rejects, a server it cannot reach) never gets there and is not ready.
		Health: &HealthCheck{
			Scheme: "http", Port: PortKubeletHealthz, Path: "/healthz",
			Delay: agentHealthDelay, Interval: agentHealthInterval, Timeout: agentHealthTimeout,
			GracePeriod: agentHealthGrace, ConsecutiveFailures: agentHealthFailures,
		},
	}, nil
}

// cgroupRoot sets $cgroup_root to the task's own cgroup, the one the runner's launcher
// tracks the task by (the freezer hierarchy's path: Mesos' Linux launcher freezes and kills
// a container through it), and creates it in the hierarchies the kubelet needs where the
// runner did not (cpuset levels need cpus and mems).
func (s *script) cgroupRoot() {
	s.line(`cgroup_root=$(sed -n 's/^[0-9]*:freezer:\(.*\)$/\1/p' /proc/self/cgroup)`)
	s.line(`if [ -z "$cgroup_root" ] || [ "$cgroup_root" = / ]; then`)
	s.line(`  echo "not in a cgroup of its own (freezer: '$cgroup_root'): refusing to put pods at the hierarchy root" >&2`)
	s.line(`  exit 1`)
	s.line(`fi`)
	s.line(`for h in cpu cpuacct cpuset memory pids systemd; do`)
	s.line(`  p=/sys/fs/cgroup/$h; [ -d "$p" ] || continue`)
	s.line(`  for c in $(echo "${cgroup_root#/}" | tr / ' '); do`)
	s.line(`    parent=$p; p=$p/$c; [ -d "$p" ] && continue`)
	s.line(`    mkdir "$p"`)
	s.line(`    if [ "$h" = cpuset ]; then cat "$parent/cpuset.cpus" > "$p/cpuset.cpus"; cat "$parent/cpuset.mems" > "$p/cpuset.mems"; fi`)
	s.line(`  done`)
	s.line(`done`)
}

// containerdTemplate writes K3s's containerd config template (<data-dir>/agent/etc/
// containerd/config.toml.tmpl, rendered by K3s on every start) with the CRI stream server
// on the task's port. Where the host cannot lower an OOM score (no CAP_SYS_RESOURCE),
// containerd must not ask runc to, or every pod sandbox fails ("can't get final child's
// PID from pipe: EOF").
func (s *script) containerdTemplate() {
	s.line(`restrict_oom=false`)
	s.line(`sh -c 'echo -998 > /proc/self/oom_score_adj' 2>/dev/null || restrict_oom=true`)
	s.line(`mkdir -p "$DATA_DIR/k3s/agent/etc/containerd"`)
	s.line(`cat > "$DATA_DIR/k3s/agent/etc/containerd/config.toml.tmpl" <<MESOSK3S_EOF`)
	s.b.WriteString(containerdConfigTemplate)
	s.line(`MESOSK3S_EOF`)
}

// containerdConfigTemplate is K3s's own template (pkg/agent/templates) with the stream port
// and restrict_oom_score_adj set by the script ($ and backquotes are the heredoc's).
const containerdConfigTemplate = `version = 2

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
`
