package controllers

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/mesosk3s/mesosk3s/api/v1alpha1"
	"github.com/mesosk3s/mesosk3s/k3s"
	"github.com/mesosk3s/mesosk3s/mesosbridge"
)

// The roles of a cluster's tasks; a task's name is <role>-<index> (mesosbridge.TaskName).
const (
	roleServer mesosbridge.TaskRole = "server"
	roleAgent  mesosbridge.TaskRole = "agent"
)

// taskName is the name of a role's index-th task.
func taskName(role mesosbridge.TaskRole, index int) string { return mesosbridge.TaskName(role, index) }

// firstServer starts the cluster: its address is the cluster's while no endpoint override
// is set, and every other task waits for it.
var firstServer = taskName(roleServer, 0)

// Launch plan order: the first server, the other servers, and the agents last. The bridge
// never lets a later step overtake an earlier one within an offer round; gate() decides
// which steps may start at all.
const (
	orderFirstServer = 100
	orderServers     = 200
	orderAgents      = 300
)

// k3sReleaseURL is where runtime Binary fetches K3s from when spec.binaryURL is unset.
const k3sReleaseURL = "https://github.com/k3s-io/k3s/releases/download/%s/k3s"

// Where K3s lives in a task: a server's persistent volume, relative to the sandbox, and
// the file name of a fetched binary.
const (
	serverDataVolume = "k3s-data"
	fetchedBinary    = "k3s"
	k3sLogFile       = "k3s.log"
)

// frameworkUser runs the tasks: K3s mounts, manages cgroups and iptables, so it needs root.
const frameworkUser = "root"

// frameworkName is the cluster's framework in Mesos: k3s:<namespace>/<name>.
func frameworkName(c *v1alpha1.K3sCluster) string { return "k3s:" + c.Namespace + "/" + c.Name }

// planInputs is everything the desired tasks depend on besides the spec.
type planInputs struct {
	// token is the cluster's server token, agentToken what agents join with; pki its CAs,
	// written into every server's data directory before K3s first starts.
	token, agentToken string
	pki               *k3s.ServerPKI
	// datastoreEndpoint is the External datastore's endpoint, which may hold a password.
	datastoreEndpoint []byte
	// serverURL is where agents and joining servers register: the endpoint override, or
	// server-0's host and API port once it has them; empty before.
	serverURL string
	// serverAgentIDs pins a server to the agent holding its persistent volume.
	serverAgentIDs map[string]string
	// rejoinURL is where server-0 of embedded etcd joins if its data is gone (see
	// k3s.Server.RejoinURL); empty while no other server ever ran.
	rejoinURL string
}

// desiredTasks is the whole desired state of a cluster as a pure function of its spec:
// every task, in plan order, whether or not it may be launched yet (see gate). An error
// names a spec the operator cannot render into a task.
func desiredTasks(c *v1alpha1.K3sCluster, in planInputs) ([]mesosbridge.TaskSpec, error) {
	s := c.Spec
	// What the API server cannot check (a LIKE regular expression that does not compile)
	// is refused here, naming the field, instead of waiting for offers forever.
	if err := mesosbridge.ValidateConstraints(constraints(s.Servers.Constraints)); err != nil {
		return nil, fmt.Errorf("spec.servers.constraints: %w", err)
	}
	if err := mesosbridge.ValidateConstraints(constraints(s.Agents.Constraints)); err != nil {
		return nil, fmt.Errorf("spec.agents.constraints: %w", err)
	}
	// Without a volume a relaunched server would start an empty K3s with the cluster's CAs,
	// and look healthy: never launch a server so (objects stored before disk had its own
	// default may lack it).
	if d := s.Servers.Resources.Disk; d == nil || d.Sign() <= 0 {
		return nil, errors.New("spec.servers.resources.disk: a server needs a persistent volume for its datastore (disk > 0)")
	}
	tasks := make([]mesosbridge.TaskSpec, 0, int(s.Servers.Replicas+s.Agents.Replicas))
	for i := 0; i < int(s.Servers.Replicas); i++ {
		t, err := serverTask(c, i, in)
		if err != nil {
			return nil, fmt.Errorf("spec.servers: %w", err)
		}
		tasks = append(tasks, t)
	}
	for i := 0; i < int(s.Agents.Replicas); i++ {
		t, err := agentTask(c, i, in)
		if err != nil {
			return nil, fmt.Errorf("spec.agents: %w", err)
		}
		tasks = append(tasks, t)
	}
	return tasks, nil
}

// baseTask holds what every K3s task of the cluster shares on Mesos: placement, resources,
// the container or the fetched binary.
func baseTask(c *v1alpha1.K3sCluster, role mesosbridge.TaskRole, index int, res v1alpha1.TaskResources, pool v1alpha1.NodePoolSpec) mesosbridge.TaskSpec {
	s := c.Spec
	t := mesosbridge.TaskSpec{
		Name:        taskName(role, index),
		Role:        role,
		Index:       index,
		Resources:   taskResources(res),
		Constraints: constraints(pool.Constraints),
		NetworkMode: mesosbridge.NetworkMode(s.Network.Mode),
		NetworkName: s.Network.Name,
	}
	switch s.Runtime {
	case v1alpha1.RuntimeImage:
		t.Container = mesosbridge.Container{Type: mesosbridge.ContainerImage, Image: k3s.Image(s.Image, s.Version)}
	default:
		binaryURL := s.BinaryURL
		if binaryURL == "" {
			binaryURL = fmt.Sprintf(k3sReleaseURL, url.PathEscape(s.Version))
		}
		t.Fetch = []mesosbridge.FetchURI{{URL: binaryURL, Executable: true, OutputFile: fetchedBinary}}
	}
	// With Host networking K3s binds fixed ports besides the offered ones (kubelet 10250,
	// embedded etcd), so two tasks of one role can never share a Mesos agent.
	if s.Network.Mode == v1alpha1.NetworkHost && !hasHostnameUnique(t.Constraints) {
		t.Constraints = append(t.Constraints, mesosbridge.Constraint{Field: mesosbridge.FieldHostname, Operator: mesosbridge.OpUnique})
	}
	// Across clusters too. The agents' ports come from the offer and their state is in
	// private mounts, but what lives in the host's network namespace is shared: flannel's
	// VXLAN port 8472 and its flannel.1 link, the cni0 bridge, kube-proxy's iptables
	// chains. Embedded etcd listens on 2379/2380, which K3s cannot move.
	if s.Network.Mode == v1alpha1.NetworkHost {
		switch {
		case role == roleAgent:
			t.HostExclusive = hostExclusiveAgent
		case s.Datastore.Type == v1alpha1.DatastoreEmbeddedEtcd:
			t.HostExclusive = hostExclusiveEtcd
		}
	}
	return t
}

// k3sCommon is what the K3s process of a server or an agent shares.
func k3sCommon(c *v1alpha1.K3sCluster, name string, pool v1alpha1.NodePoolSpec) k3s.Common {
	exe := `"$MESOS_SANDBOX"/` + fetchedBinary
	if c.Spec.Runtime == v1alpha1.RuntimeImage {
		exe = "k3s" // on the PATH of the stock image
	}
	return k3s.Common{
		Executable: exe,
		// Node names must stay unique however Mesos places the tasks: two agents on one
		// Mesos host would otherwise both register under the host name.
		NodeName:   nodeName(c.Name, name),
		NodeLabels: pool.NodeLabels,
		NodeTaints: pool.NodeTaints,
		// K3s rotates its own log: a looping process cannot fill the agent's disk through
		// the sandbox's stdout/stderr, which Mesos' default container logger never rotates.
		LogFile: `"$MESOS_SANDBOX"/` + k3sLogFile,
		// A binaryURL or image of another release must not run as this version.
		Version:   c.Spec.Version,
		ExtraArgs: pool.Args,
		Env:       envMap(pool.Env),
	}
}

// Host-exclusive classes (mesosbridge.TaskSpec.HostExclusive) of Host-network tasks.
const (
	hostExclusiveAgent = "k3s-agent"
	hostExclusiveEtcd  = "k3s-embedded-etcd"
)

// nodeName is the Kubernetes node name of a task: <cluster>-<task>.
func nodeName(cluster, task string) string { return cluster + "-" + task }

func serverTask(c *v1alpha1.K3sCluster, i int, in planInputs) (mesosbridge.TaskSpec, error) {
	s := c.Spec
	t := baseTask(c, roleServer, i, s.Servers.Resources, s.Servers.NodePoolSpec)
	t.Order = orderServers + i
	if i == 0 {
		t.Order = orderFirstServer
	}
	srv := k3s.Server{
		Common:      k3sCommon(c, t.Name, s.Servers.NodePoolSpec),
		TLSSANs:     tlsSANs(c),
		ClusterCIDR: s.Network.ClusterCIDR, ServiceCIDR: s.Network.ServiceCIDR,
		ClusterDNS: s.Network.ClusterDNS, ClusterDomain: s.Network.ClusterDomain,
		DatastoreEndpointSecret: in.datastoreEndpoint,
		Token:                   in.token,
		AgentSecret:             k3s.TokenSecret(in.agentToken),
		PKI:                     in.pki,
	}
	if s.Datastore.Type == v1alpha1.DatastoreEmbeddedEtcd {
		srv.ClusterInit = i == 0
		if i == 0 {
			srv.RejoinURL = in.rejoinURL
		}
		if i > 0 {
			srv.JoinURL = in.serverURL
		}
	}
	p, err := srv.Process()
	if err != nil {
		return t, fmt.Errorf("%s: %w", t.Name, err)
	}
	withProcess(&t, p)
	// The server's state (SQLite or etcd data) lives on a persistent volume, so a relaunch
	// lands on the same agent and finds its data (desiredTasks refuses a server without).
	disk := s.Servers.Resources.Disk
	t.Volume = &mesosbridge.VolumeRequest{
		SizeMiB:       mebibytes(*disk),
		ContainerPath: serverDataVolume,
		AgentID:       in.serverAgentIDs[t.Name],
	}
	t.Resources.DiskMiB = 0
	t.SpecHash = mesosbridge.SpecHash(t)
	return t, nil
}

func agentTask(c *v1alpha1.K3sCluster, i int, in planInputs) (mesosbridge.TaskSpec, error) {
	s := c.Spec
	t := baseTask(c, roleAgent, i, s.Agents.Resources, s.Agents.NodePoolSpec)
	t.Order = orderAgents
	if in.serverURL == "" {
		// Nothing to join yet: gate() holds agents back until the first server's address is
		// known, and the task gets its command then.
		t.SpecHash = mesosbridge.SpecHash(t)
		return t, nil
	}
	agent := k3s.Agent{Common: k3sCommon(c, t.Name, s.Agents.NodePoolSpec), ServerURL: in.serverURL, Token: in.agentToken, PauseImage: s.Agents.PauseImage}
	for i, u := range s.Agents.Images {
		file := fmt.Sprintf("image-%d.tar", i)
		t.Fetch = append(t.Fetch, mesosbridge.FetchURI{URL: u, OutputFile: file})
		agent.ImageArchives = append(agent.ImageArchives, `"$MESOS_SANDBOX"/`+file)
	}
	p, err := agent.Process()
	if err != nil {
		return t, fmt.Errorf("%s: %w", t.Name, err)
	}
	withProcess(&t, p)
	t.SpecHash = mesosbridge.SpecHash(t)
	return t, nil
}

// withProcess makes the task run the rendered K3s process.
func withProcess(t *mesosbridge.TaskSpec, p k3s.Process) {
	t.Command, t.Env, t.BootstrapEnv, t.Secrets, t.Ports = p.Script, p.Env, p.BootstrapEnv, p.Secrets, p.Ports
	if h := p.Health; h != nil {
		protocol := mesosbridge.HealthHTTP
		if h.Scheme == "https" {
			protocol = mesosbridge.HealthHTTPS
		}
		t.HealthCheck = &mesosbridge.HealthCheck{
			Protocol: protocol, Port: h.Port, Path: h.Path,
			Delay: h.Delay, Interval: h.Interval, Timeout: h.Timeout,
			GracePeriod: h.GracePeriod, ConsecutiveFailures: h.ConsecutiveFailures,
		}
	}
}

// tlsSANs are the extra names the server certificate carries: the endpoint override's host.
func tlsSANs(c *v1alpha1.K3sCluster) []string {
	if c.Spec.Kubeconfig.Endpoint == "" {
		return nil
	}
	u, err := url.Parse(c.Spec.Kubeconfig.Endpoint)
	if err != nil || u.Hostname() == "" {
		return nil // the CRD validates the endpoint; nothing to add for a bad one
	}
	return []string{u.Hostname()}
}

func taskResources(r v1alpha1.TaskResources) mesosbridge.Resources {
	out := mesosbridge.Resources{CPUs: r.CPUs.AsApproximateFloat64(), MemMiB: mebibytes(r.Memory)}
	if r.Disk != nil {
		out.DiskMiB = mebibytes(*r.Disk)
	}
	return out
}

// mebibytes converts a Kubernetes quantity of bytes to the MiB Mesos counts in.
func mebibytes(q resource.Quantity) float64 { return q.AsApproximateFloat64() / (1 << 20) }

func constraints(in []v1alpha1.Constraint) []mesosbridge.Constraint {
	if len(in) == 0 {
		return nil
	}
	out := make([]mesosbridge.Constraint, len(in))
	for i, c := range in {
		out[i] = mesosbridge.Constraint{Field: c.Field, Operator: mesosbridge.ConstraintOperator(c.Operator), Value: c.Value}
	}
	return out
}

func hasHostnameUnique(cs []mesosbridge.Constraint) bool {
	for _, c := range cs {
		if strings.EqualFold(c.Field, mesosbridge.FieldHostname) && c.Operator == mesosbridge.OpUnique {
			return true
		}
	}
	return false
}

func envMap(env []v1alpha1.EnvVar) map[string]string {
	if len(env) == 0 {
		return nil
	}
	m := make(map[string]string, len(env))
	for _, e := range env {
		m[e.Name] = e.Value
	}
	return m
}
