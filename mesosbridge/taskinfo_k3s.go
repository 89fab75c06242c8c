package mesosbridge

import (
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// Environment variables K3s reads itself: the token and the datastore endpoint (which may
// hold a password) reach K3s without ever being on a command line.
const (
	envK3sToken             = "K3S_TOKEN"
	envK3sDatastoreEndpoint = "K3S_DATASTORE_ENDPOINT"
	envTLSPrefix            = "MESOSK3S_TLS_"
)

// secretEnvName is the SECRET env var that carries a K3s secret key.
func secretEnvName(key string) string {
	switch key {
	case SecretToken:
		return envK3sToken
	case SecretDatastoreEndpoint:
		return envK3sDatastoreEndpoint
	}
	return envTLSPrefix + envSuffix(key)
}

func secretEnvNames(spec TaskSpec) []string {
	names := make([]string, 0, len(spec.Secrets))
	for _, k := range sortedKeys(spec.Secrets) {
		names = append(names, secretEnvName(k))
	}
	return names
}

// tlsSecretKeys are the secret keys that are files under <data-dir>/server/tls/, sorted.
func tlsSecretKeys(spec TaskSpec) []string {
	var keys []string
	for _, k := range sortedKeys(spec.Secrets) {
		if k != SecretToken && k != SecretDatastoreEndpoint {
			keys = append(keys, k)
		}
	}
	return keys
}

// k3sBinary is the K3s executable: fetched into the sandbox for the Binary runtime, on
// the PATH of the stock image for the Docker runtime.
func k3sBinary(rt Runtime) string {
	if rt == RuntimeBinary {
		return `"$MESOS_SANDBOX"/k3s`
	}
	return "k3s"
}

// k3sCommand is the CommandInfo of a server or agent task. The same script runs under
// both runtimes; for Binary the fetcher brings the K3s binary as ./k3s first.
func k3sCommand(spec TaskSpec, p placement) *mesos.CommandInfo {
	secrets := make(map[string][]byte, len(spec.Secrets))
	for k, v := range spec.Secrets {
		secrets[secretEnvName(k)] = v
	}
	cmd := &mesos.CommandInfo{
		Environment: environment(merge(spec.Env, portEnv(p.Ports)), secrets),
		Shell:       ptr(true),
		Value:       ptr(k3sScript(spec, p)),
	}
	if spec.Runtime == RuntimeBinary {
		cmd.URIs = []mesos.CommandInfo_URI{{
			Value:      spec.BinaryURL,
			Executable: ptr(true),
			Extract:    ptr(false),
			OutputFile: ptr("k3s"),
		}}
	}
	return cmd
}

// k3sScript writes the CAs (servers) into the data directory on the first start only,
// drops their env vars, and execs K3s so that it receives the task's signals directly.
// Secret values are expanded only as arguments of shell builtins (printf), never of an
// exec'd program, so they do not show in the agent's process list through this script.
func k3sScript(spec TaskSpec, p placement) string {
	var b strings.Builder
	line := func(s string) { b.WriteString(s); b.WriteByte('\n') }
	line("set -e")
	line("umask 077")
	line("DATA_DIR=" + dataDirExpr(p))
	line(`mkdir -p "$DATA_DIR"`)
	if tls := tlsSecretKeys(spec); spec.Role == RoleServer && len(tls) > 0 {
		// A file K3s already has is never replaced: the CAs are the cluster's identity and
		// K3s itself may have rotated what it derives from them.
		line(`write_once() { [ -e "$2" ] || { printf '%s' "$1" > "$2.tmp" && mv "$2.tmp" "$2"; }; }`)
		line(`mkdir -p "$DATA_DIR/server/tls/etcd"`)
		var unset []string
		for _, k := range tls {
			env := secretEnvName(k)
			line(`write_once "$` + env + `" "$DATA_DIR/server/tls/"` + shellQuote(k))
			unset = append(unset, env)
		}
		line("unset " + strings.Join(unset, " "))
	}
	dataArgs := ` --data-dir="$DATA_DIR" `
	if spec.Role == RoleServer {
		// K3s writes an admin kubeconfig to /etc/rancher/k3s/ unless told otherwise: keep it
		// in the task's data directory, not on the shared host.
		dataArgs = ` --data-dir="$DATA_DIR" --write-kubeconfig="$DATA_DIR/kubeconfig.yaml" `
	}
	line("exec " + k3sBinary(spec.Runtime) + " " + string(spec.Role) + dataArgs + shellJoin(k3sArgs(spec, p.Ports)))
	return b.String()
}

// k3sArgs are the K3s flags after the subcommand and --data-dir, one word per element
// (flag names as in K3s v1.25+: `k3s server --help`). The token and a datastore endpoint
// with credentials come from the environment (K3S_TOKEN, K3S_DATASTORE_ENDPOINT).
func k3sArgs(spec TaskSpec, ports map[string]uint32) []string {
	k := spec.K3s
	var args []string
	flag := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name+"="+value)
		}
	}
	if spec.Role == RoleServer {
		flag("https-listen-port", strconv.FormatUint(uint64(ports[PortAPI]), 10))
		if k.ClusterInit {
			args = append(args, "--cluster-init")
		}
		// The controller-manager, cloud-controller-manager and scheduler would otherwise
		// listen on fixed ports (10257, 10258, 10259), which two servers on one Mesos agent
		// would fight over; they run the same without those listeners.
		args = append(args, fixedPortListenersOff...)
	}
	flag("server", k.ServerURL)
	flag("node-name", k.NodeName)
	if spec.Role == RoleServer {
		for _, san := range k.TLSSANs {
			flag("tls-san", san)
		}
		flag("cluster-cidr", k.ClusterCIDR)
		flag("service-cidr", k.ServiceCIDR)
		flag("cluster-dns", k.ClusterDNS)
		flag("cluster-domain", k.ClusterDomain)
		flag("datastore-endpoint", k.DatastoreEndpoint)
	}
	for _, key := range sortedKeys(k.NodeLabels) {
		flag("node-label", key+"="+k.NodeLabels[key])
	}
	for _, taint := range k.NodeTaints {
		flag("node-taint", taint)
	}
	return append(args, k.ExtraArgs...)
}

var fixedPortListenersOff = []string{
	"--kube-controller-manager-arg=secure-port=0",
	"--kube-cloud-controller-manager-arg=secure-port=0",
	"--kube-scheduler-arg=secure-port=0",
}

// Server health: K3s answers an anonymous /readyz with 401, but its supervisor's /ping
// answers "pong" without credentials on the same port. Mesos' HTTPS checks do not verify
// the certificate, which is signed by the cluster's own CA.
const (
	healthGracePeriodSeconds  = 300 // first start: image pull, etcd bootstrap, CRDs
	healthIntervalSeconds     = 10
	healthTimeoutSeconds      = 5
	healthDelaySeconds        = 5
	healthConsecutiveFailures = 3
)

func serverHealthCheck(apiPort uint32) *mesos.HealthCheck {
	return &mesos.HealthCheck{
		Type: mesos.HealthCheck_HTTP,
		HTTP: &mesos.HealthCheck_HTTPCheckInfo{
			Scheme: ptr("https"),
			Port:   apiPort,
			Path:   ptr("/ping"),
		},
		DelaySeconds:        ptr(float64(healthDelaySeconds)),
		IntervalSeconds:     ptr(float64(healthIntervalSeconds)),
		TimeoutSeconds:      ptr(float64(healthTimeoutSeconds)),
		ConsecutiveFailures: ptr(uint32(healthConsecutiveFailures)),
		GracePeriodSeconds:  ptr(float64(healthGracePeriodSeconds)),
	}
}
