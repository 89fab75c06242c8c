package k3s

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Port names a server asks for. PortAPI is its HTTPS port, serving both the Kubernetes
// API and the K3s supervisor (--https-listen-port). K3s always puts its internal
// kube-apiserver at that port + 1 (seen on the real binary), so PortAPIServer follows it
// and the task must own both.
const (
	PortAPI       = "api"
	PortAPIServer = "apiserver"
)

// EtcdClientPort is where a server's embedded etcd takes clients, on the server's node
// IP; K3s has no flag to move it (nor the peer port, 2380), so two embedded-etcd servers
// cannot share a host.
const EtcdClientPort = 2379

// Common is what servers and agents share.
type Common struct {
	// Executable is the shell word that runs K3s: "k3s" on the PATH of the stock image,
	// or the path of a fetched binary (a shell expression such as "$MESOS_SANDBOX"/k3s).
	Executable string
	// NodeName is --node-name; node names must be unique in the cluster however the tasks
	// are placed, so the controller always sets one.
	NodeName   string
	NodeLabels map[string]string
	NodeTaints []string // key=value:Effect
	// LogFile is where K3s writes its log, as a shell word (e.g. "$MESOS_SANDBOX"/k3s.log).
	// K3s then rotates it itself (50 MB, three compressed backups), so a looping process
	// cannot fill its host's disk; empty leaves the log on stdout/stderr, unbounded.
	LogFile string
	// Version is the K3s release the process must be (spec.version): the script checks
	// the executable's own `--version` first and exits with ExitWrongVersion otherwise.
	// Empty skips the check.
	Version string
	// ExtraArgs are appended verbatim (each one shell word) after the generated flags.
	ExtraArgs []string
	// Env is extra plain environment for the process.
	Env map[string]string
}

// Server is a K3s server (control plane only: --disable-agent).
type Server struct {
	Common
	// ClusterInit starts embedded etcd as its first member (--cluster-init).
	ClusterInit bool
	// RejoinURL, for the ClusterInit server, is a server of the same etcd cluster to join
	// instead when the data directory holds no etcd member: the first server's volume was
	// lost after other members joined, and a new cluster (--cluster-init on empty data)
	// would split the cluster in two. It is bootstrap environment (RejoinEnv), read only
	// in that case, so it may follow whichever server is up without replacing the task.
	RejoinURL string
	// JoinURL is the server a joining server registers with (--server); empty for the
	// first one.
	JoinURL string
	// TLSSANs are extra names for the serving certificate (--tls-san).
	TLSSANs                                             []string
	ClusterCIDR, ServiceCIDR, ClusterDNS, ClusterDomain string
	// DatastoreEndpoint is a --datastore-endpoint without credentials; one with
	// credentials goes into DatastoreEndpointSecret instead.
	DatastoreEndpoint       string
	DatastoreEndpointSecret []byte

	// Token is the cluster's server token (K10<ca-hash>::server:<secret>): what servers
	// join with. It never leaves the servers.
	Token string
	// AgentSecret is the secret agents join with (--agent-token); the agents' own token is
	// AgentToken(ServerCA, AgentSecret). Anyone holding it can join as an agent but not as a
	// server, so it cannot pull the bootstrap data (the CA keys).
	AgentSecret string
	// PKI is written under <data-dir>/server/tls/ before the first start; nil lets K3s
	// generate its own CAs (only for tests of K3s itself).
	PKI *ServerPKI
}

// RejoinEnv carries Server.RejoinURL to the script.
const RejoinEnv = "MESOSK3S_REJOIN_URL"

// Server health: K3s answers an anonymous /readyz with 401 (seen on the real binary),
// but its supervisor's /ping answers "pong" without credentials on the same port.
const (
	serverHealthGrace    = 300 * time.Second // first start: image pull, etcd bootstrap, CRDs
	serverHealthInterval = 10 * time.Second
	serverHealthTimeout  = 5 * time.Second
	serverHealthDelay    = 5 * time.Second
	serverHealthFailures = 3
)

// fixedPortListenersOff turns off the listeners of the controller-manager, the
// cloud-controller-manager and the scheduler, which would otherwise take the fixed ports
// 10257, 10258 and 10259 that two servers on one host would fight over; they run the
// same without them.
var fixedPortListenersOff = []string{
	"--kube-controller-manager-arg=secure-port=0",
	"--kube-cloud-controller-manager-arg=secure-port=0",
	"--kube-scheduler-arg=secure-port=0",
}

// Process renders the server.
func (s Server) Process() (Process, error) {
	if err := s.validate(); err != nil {
		return Process{}, err
	}
	secrets := map[string][]byte{EnvToken: []byte(s.Token)}
	if s.AgentSecret != "" {
		secrets[EnvAgentToken] = []byte(s.AgentSecret)
	}
	if len(s.DatastoreEndpointSecret) > 0 {
		secrets[EnvDatastoreEndpoint] = s.DatastoreEndpointSecret
	}
	var sc script
	sc.preamble()
	sc.versionCheck(s.Executable, s.Version)
	// K3s writes its node password to /etc/rancher/node/, servers too: keep it with the
	// server's data, not on the shared host, where another cluster's node would read it.
	sc.privateMounts(map[string]string{"/etc/rancher": "rancher"}, nil)
	if s.PKI != nil {
		files := s.PKI.files()
		// A file K3s already has is never replaced: the CAs are the cluster's identity and
		// K3s itself may have rotated what it derives from them.
		sc.line(`write_once() { [ -e "$2" ] || { printf '%s' "$1" > "$2.tmp" && mv "$2.tmp" "$2"; }; }`)
		sc.line(`mkdir -p "$DATA_DIR/server/tls/etcd"`)
		var vars []string
		for _, f := range files {
			// Secret values are expanded only as arguments of printf, a shell builtin, so
			// they never appear in a process list through this script.
			sc.line(`write_once "$`, f.secretVar(), `" "$DATA_DIR/server/tls/"`, shellQuote(f.path))
			secrets[f.secretVar()] = f.data
			vars = append(vars, f.secretVar())
		}
		sc.line("unset ", strings.Join(vars, " "))
	}
	var a args
	a.literal("server")
	a.addExpr("data-dir", "$DATA_DIR")
	// K3s writes an admin kubeconfig to /etc/rancher/k3s/ unless told otherwise: keep it
	// in the task's data directory, not on the shared host.
	a.addExpr("write-kubeconfig", "$DATA_DIR/kubeconfig.yaml")
	a.addExpr("https-listen-port", "$"+portVar(PortAPI))
	if s.ClusterInit {
		// "$@" is --cluster-init, or --server=<another member> when this member's data is
		// gone and the cluster has other members (see RejoinURL).
		sc.line(`if [ -n "${`, RejoinEnv, `:-}" ] && [ ! -d "$DATA_DIR/server/db/etcd/member/wal" ]; then set -- "--server=$`, RejoinEnv, `"; else set -- --cluster-init; fi`)
		a = append(a, word{text: `"$@"`, expr: true})
	}
	a.literal(fixedPortListenersOff...)
	a.add("server", s.JoinURL)
	a.add("node-name", s.NodeName)
	// The serving certificate names the host as clients reach it, which need not be the
	// name or address K3s finds for itself.
	a = append(a, word{text: `${HOST:+"--tls-san=$HOST"}`, expr: true})
	for _, san := range s.TLSSANs {
		a.add("tls-san", san)
	}
	a.add("cluster-cidr", s.ClusterCIDR)
	a.add("service-cidr", s.ServiceCIDR)
	a.add("cluster-dns", s.ClusterDNS)
	a.add("cluster-domain", s.ClusterDomain)
	a.add("datastore-endpoint", s.DatastoreEndpoint)
	// Servers run the control plane only: workloads go to agents, which Mesos sizes and
	// places separately, and a server then needs no container runtime on its host.
	a.literal("--disable-agent")
	s.nodeArgs(&a)
	sc.line("exec ", s.Executable, " ", a.shell())
	var bootstrap map[string]string
	if s.ClusterInit && s.RejoinURL != "" {
		bootstrap = map[string]string{RejoinEnv: s.RejoinURL}
	}
	return Process{
		Script:       inPrivateMountNamespace(sc.String()),
		Env:          s.Env,
		BootstrapEnv: bootstrap,
		Secrets:      secrets,
		Ports:        []string{PortAPI, PortAPIServer},
		Health: &HealthCheck{
			Scheme: "https", Port: PortAPI, Path: "/ping",
			Delay: serverHealthDelay, Interval: serverHealthInterval, Timeout: serverHealthTimeout,
			GracePeriod: serverHealthGrace, ConsecutiveFailures: serverHealthFailures,
		},
	}, nil
}

func (s Server) validate() error {
	var errs []error
	errs = append(errs, s.Common.validate()...)
	if s.Token == "" {
		errs = append(errs, errors.New("a server needs the join token"))
	}
	if s.RejoinURL != "" && !s.ClusterInit {
		errs = append(errs, errors.New("only the server that starts the cluster rejoins it (a joining server has its join URL)"))
	}
	if s.ClusterInit && s.JoinURL != "" {
		errs = append(errs, errors.New("a server either starts the cluster (cluster-init) or joins one, not both"))
	}
	if s.PKI != nil {
		for _, f := range s.PKI.files() {
			if f.empty() {
				errs = append(errs, fmt.Errorf("the PKI lacks %s", f.path))
			}
		}
	}
	return errors.Join(errs...)
}

// nodeArgs are the flags of the node's identity, then the user's own.
func (c Common) nodeArgs(a *args) {
	if c.LogFile != "" {
		a.addWord("log", c.LogFile)
	}
	for _, key := range sortedKeys(c.NodeLabels) {
		a.add("node-label", key+"="+c.NodeLabels[key])
	}
	for _, taint := range c.NodeTaints {
		a.add("node-taint", taint)
	}
	a.literal(c.ExtraArgs...)
}

func (c Common) validate() []error {
	var errs []error
	if c.Executable == "" {
		errs = append(errs, errors.New("the K3s executable is not set"))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("the node name is not set"))
	}
	for k := range c.Env {
		if k == EnvToken || k == EnvAgentToken || k == EnvDatastoreEndpoint || strings.HasPrefix(k, TLSVariablePrefix) {
			errs = append(errs, fmt.Errorf("env %s is reserved: it would shadow a secret", k))
		}
	}
	return errs
}
